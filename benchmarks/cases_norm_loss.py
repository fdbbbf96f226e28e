"""Group `norm_loss`: batch norm in training mode and cross-entropy, forward + backward.

Each build function receives `fw` (`kinone.autograd` or `torch`) and takes the functional
module that goes with it (`kinone.nn.functional` or `torch.nn.functional`), whose
`batch_norm` and `cross_entropy` have the same signatures in both.
"""

from __future__ import annotations

import importlib

import numpy as np
from case import Case  # benchmarks/case.py: run.py puts its own folder on sys.path

BN_SHAPE = (16, 64, 32, 32)
CE_BATCH, CE_CLASSES = 256, 1000


def functional(fw):
    """The framework's functional namespace (imported here: a case module imports no framework at the top)."""
    return importlib.import_module("torch.nn.functional" if fw.__name__ == "torch" else "kinone.nn.functional")


def batch_norm_train_16x64x32x32(fw):
    """batch_norm, training mode, (16, 64, 32, 32) float32 with weight and bias; forward + backward(g).

    The step pulls back a fixed random cotangent (no extra loss ops) and returns Σ dL/dweight,
    the checksum the harness compares between the frameworks; the running statistics are
    updated on every step, as in training.
    """
    F = functional(fw)
    rng = np.random.default_rng(0)
    channels = BN_SHAPE[1]
    x = fw.tensor((rng.standard_normal(BN_SHAPE) * 2 + 0.5).astype(np.float32), requires_grad=True)
    cotangent = fw.tensor(rng.standard_normal(BN_SHAPE).astype(np.float32))
    weight = fw.tensor(rng.uniform(0.5, 1.5, channels).astype(np.float32), requires_grad=True)
    bias = fw.tensor((0.1 * rng.standard_normal(channels)).astype(np.float32), requires_grad=True)
    running_mean = fw.tensor(np.zeros(channels, dtype=np.float32))
    running_var = fw.tensor(np.ones(channels, dtype=np.float32))

    def step():
        x.grad = weight.grad = bias.grad = None
        y = F.batch_norm(x, running_mean, running_var, weight, bias, training=True, momentum=0.1, eps=1e-5)
        y.backward(cotangent)
        return weight.grad.sum()

    return step


def cross_entropy_256x1000(fw):
    """cross_entropy over (256, 1000) float32 logits and int64 targets, mean reduction; forward + backward."""
    F = functional(fw)
    rng = np.random.default_rng(0)
    logits = fw.tensor((3 * rng.standard_normal((CE_BATCH, CE_CLASSES))).astype(np.float32), requires_grad=True)
    target = fw.tensor(rng.integers(0, CE_CLASSES, CE_BATCH))  # int64

    def step():
        logits.grad = None
        loss = F.cross_entropy(logits, target)
        loss.backward()
        return loss

    return step


CASES = [
    Case("batch_norm_train_16x64x32x32", batch_norm_train_16x64x32x32, unit="ms/iter", target=2.0),
    Case("cross_entropy_256x1000", cross_entropy_256x1000, unit="ms/iter", target=2.0),
]
