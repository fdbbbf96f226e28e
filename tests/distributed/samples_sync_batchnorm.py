"""Gradcheck samples: SyncBatchNormTraining in one process (the sums over ranks are this
rank's sums), over (N, C), (N, C, L) and (N, C, H, W) inputs, with and without weight, bias and
running statistics. Its N-rank behaviour is checked against one process by test_mpi.py.

Running statistics are built afresh inside each fn (the forward updates them in place)."""

import numpy as np

from kinone.autograd import Tensor
from kinone.distributed import SyncBatchNormTraining, sync_batch_norm

rng = np.random.default_rng(12)


def r(*shape):
    return rng.standard_normal(shape)


def positive(*shape):
    return rng.uniform(0.5, 2.0, shape)


def train(params=(), running=True, eps=1e-5):
    def fn(x, *tensors):
        named = dict(zip(params, tensors))
        stats = (None, None)
        if running:
            channels = x.shape[1]
            stats = (
                Tensor(np.linspace(-0.5, 0.5, channels)).to(x.device),
                Tensor(np.linspace(0.5, 1.5, channels)).to(x.device),
            )
        return sync_batch_norm(x, *stats, named.get("weight"), named.get("bias"), momentum=0.3, eps=eps)

    return fn


AFFINE = ("weight", "bias")

SAMPLES = {
    SyncBatchNormTraining: [
        (train(AFFINE), [r(6, 3) * 2 + 1, positive(3), r(3)]),  # (N, C)
        (train(AFFINE, running=False), [r(4, 3, 5), positive(3), r(3)]),  # (N, C, L), no running statistics
        (train(), [r(2, 3, 4, 5)]),  # (N, C, H, W), no weight or bias
        (train(("weight",), eps=0.1), [r(3, 2, 3, 3), positive(2)]),
        (train(("bias",)), [r(3, 2, 3, 3), r(2)]),
        (train(AFFINE), [r(2, 2, 8, 8) * 3 - 1, positive(2), r(2)]),  # rows of 64: the matmul dot path
    ],
}
