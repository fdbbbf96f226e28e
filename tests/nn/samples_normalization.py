"""Gradcheck samples: batch norm in training mode (batch statistics) and in eval mode (running
statistics), over (N, C), (N, C, L) and (N, C, H, W) inputs, with and without weight and bias.

Running statistics are constants, built afresh inside each fn (training mode updates them in
place on every evaluation, which must not leak from one evaluation into the next), on the
input's device."""

import numpy as np

from kinone.autograd import Tensor
from kinone.nn import functional as F
from kinone.nn.functional.normalization import BatchNormEval, BatchNormTraining

rng = np.random.default_rng(11)


def r(*shape):
    return rng.standard_normal(shape)


def positive(*shape):
    return rng.uniform(0.5, 2.0, shape)


def stats(channels, device):
    """Fresh running statistics (distinct from zeros and ones, so that using them shows)."""
    mean, var = np.linspace(-0.5, 0.5, channels), np.linspace(0.5, 1.5, channels)
    return Tensor(mean.copy()).to(device), Tensor(var.copy()).to(device)


def train(**options):
    def fn(x, *params):
        running_mean, running_var = stats(x.shape[1], x.device) if options.get("running", True) else (None, None)
        named = dict(zip(options.get("params", ()), params))
        return F.batch_norm(
            x,
            running_mean,
            running_var,
            named.get("weight"),
            named.get("bias"),
            training=True,
            momentum=0.3,
            eps=options.get("eps", 1e-5),
        )

    return fn


def evaluate(**options):
    mean, var = r(options["channels"]), positive(options["channels"])

    def fn(x, *params):
        named = dict(zip(options.get("params", ()), params))
        return F.batch_norm(
            x,
            Tensor(mean).to(x.device),
            Tensor(var).to(x.device),
            named.get("weight"),
            named.get("bias"),
            training=False,
            eps=options.get("eps", 1e-5),
        )

    return fn


AFFINE = ("weight", "bias")

SAMPLES = {
    BatchNormTraining: [
        (train(params=AFFINE), [r(6, 3) * 2 + 1, positive(3), r(3)]),  # (N, C)
        (train(params=AFFINE, running=False), [r(4, 3, 5), positive(3), r(3)]),  # (N, C, L), no running stats
        (train(), [r(2, 3, 4, 5)]),  # (N, C, H, W), no weight or bias
        (train(params=("weight",), eps=0.1), [r(3, 2, 3, 3), positive(2)]),  # weight only
        (train(params=("bias",)), [r(3, 2, 3, 3), r(2)]),  # bias only
        (train(params=AFFINE), [r(2, 2, 8, 8) * 3 - 1, positive(2), r(2)]),  # rows of 64: the matmul dot path
    ],
    BatchNormEval: [
        (evaluate(channels=3, params=AFFINE), [r(5, 3), r(3), r(3)]),  # (N, C)
        (evaluate(channels=3), [r(4, 3, 5)]),  # (N, C, L), no weight or bias
        (evaluate(channels=2, params=AFFINE), [r(2, 2, 3, 4), r(2), r(2)]),  # (N, C, H, W)
        (evaluate(channels=2, params=("weight",)), [r(2, 2, 3, 4), r(2)]),
        (evaluate(channels=2, params=("bias",), eps=0.5), [r(2, 2, 3, 4), r(2)]),
        (evaluate(channels=2, params=AFFINE), [r(2, 2, 8, 8), r(2), r(2)]),  # rows of 64
    ],
}
