"""Gradcheck samples: the losses. Integer targets, class weights and pos_weight are constants
closed over by each fn (made on the CPU, moved to the input's device by the fn, so that the
samples also run on a CUDA device); float targets of binary_cross_entropy_with_logits and
mse_loss are inputs, since both have a gradient for them."""

import numpy as np

from kinone.autograd import Tensor
from kinone.nn import functional as F
from kinone.nn.functional.loss import MSE, NLL, BCEWithLogits, CrossEntropy

rng = np.random.default_rng(3)


def r(*shape):
    return rng.standard_normal(shape)


def classes(classes_count, *shape, ignore=None):
    t = rng.integers(0, classes_count, shape)
    if ignore is not None:
        t.flat[::3] = ignore
    return Tensor(t)


def weights(n):
    return Tensor(rng.uniform(0.3, 2.0, n))


def on(device, t):
    """A constant on `device` (None stays None)."""
    return None if t is None else t.to(device)


def ce(target, weight=None, **options):
    def fn(x):
        return F.cross_entropy(x, on(x.device, target), weight=on(x.device, weight), **options)

    return fn


def nll(target, weight=None, **options):
    def fn(x):
        return F.nll_loss(x, on(x.device, target), weight=on(x.device, weight), **options)

    return fn


def bce(weight=None, pos_weight=None, reduction="mean"):
    def fn(x, t):
        return F.binary_cross_entropy_with_logits(
            x, t, weight=on(x.device, weight), pos_weight=on(x.device, pos_weight), reduction=reduction
        )

    return fn


def mse(reduction):
    def fn(x, t):
        return F.mse_loss(x, t, reduction=reduction)

    return fn


def probabilities(*shape):
    return rng.uniform(0.05, 0.95, shape)


SAMPLES = {
    CrossEntropy: [
        (ce(classes(4, 5)), [r(5, 4) * 2]),
        (ce(classes(4, 5), reduction="sum"), [r(5, 4)]),
        (ce(classes(4, 5), reduction="none"), [r(5, 4)]),
        (ce(classes(4, 6), weight=weights(4)), [r(6, 4)]),  # weighted mean: / Σ w[t_i]
        (ce(classes(4, 6), label_smoothing=0.2), [r(6, 4)]),
        (ce(classes(4, 6), weight=weights(4), label_smoothing=0.3), [r(6, 4)]),
        (ce(classes(4, 6), weight=weights(4), label_smoothing=0.3, reduction="none"), [r(6, 4)]),
        (ce(classes(4, 6, ignore=-100)), [r(6, 4)]),  # some targets ignored
        (ce(classes(4, 6, ignore=2), ignore_index=2, weight=weights(4), label_smoothing=0.1), [r(6, 4)]),
        (ce(classes(3, 2, 2, 3), weight=weights(3), label_smoothing=0.2), [r(2, 3, 2, 3)]),  # (N, C, d1, d2)
        (ce(classes(3, 2, 4, ignore=-100), reduction="sum"), [r(2, 3, 4)]),  # (N, C, d1)
        (ce(Tensor(np.array(2)), label_smoothing=0.1), [r(5)]),  # (C,) with a 0-d target
        (ce(classes(4, 3)), [r(3, 4) * 1e3]),  # rows whose max are far apart: per-row shift
    ],
    NLL: [
        (nll(classes(4, 5)), [r(5, 4)]),
        (nll(classes(4, 5), weight=weights(4)), [r(5, 4)]),
        (nll(classes(4, 6, ignore=-100), reduction="sum"), [r(6, 4)]),
        (nll(classes(4, 6, ignore=1), ignore_index=1, weight=weights(4), reduction="none"), [r(6, 4)]),
        (nll(classes(3, 2, 2, 2), weight=weights(3)), [r(2, 3, 2, 2)]),
        (nll(Tensor(np.array(1))), [r(4)]),
    ],
    BCEWithLogits: [
        (bce(), [r(4, 3) * 3, probabilities(4, 3)]),
        (bce(reduction="sum"), [r(4, 3), probabilities(4, 3)]),
        (bce(reduction="none"), [r(4, 3), probabilities(4, 3)]),
        (bce(weight=Tensor(rng.uniform(0.5, 2, (4, 3)))), [r(4, 3), probabilities(4, 3)]),
        (bce(weight=Tensor(rng.uniform(0.5, 2, 3))), [r(4, 3), probabilities(4, 3)]),  # broadcast per class
        (bce(pos_weight=Tensor(rng.uniform(0.5, 3, 3))), [r(4, 3) * 2, probabilities(4, 3)]),
        (
            bce(
                weight=Tensor(rng.uniform(0.5, 2, (4, 1))), pos_weight=Tensor(rng.uniform(0.5, 3, 3)), reduction="none"
            ),
            [r(4, 3), probabilities(4, 3)],
        ),
        (bce(pos_weight=Tensor(rng.uniform(0.5, 3, 5)), reduction="sum"), [r(2, 3, 5), probabilities(2, 3, 5)]),
        (bce(), [r(6), probabilities(6)]),
    ],
    MSE: [
        (mse("mean"), [r(3, 4), r(3, 4)]),
        (mse("sum"), [r(2, 3, 2), r(2, 3, 2)]),
        (mse("none"), [r(5), r(5)]),
    ],
}
