"""Gradcheck samples: binary_cross_entropy, l1_loss, smooth_l1_loss, kl_div (every reduction,
gradients to input and target) and cosine_similarity. Differences are kept away from the kinks
(0 for l1, ±beta for smooth l1)."""

import numpy as np

from kinone.autograd import Tensor
from kinone.nn import functional as F
from kinone.nn.functional.distance import CosineSimilarity
from kinone.nn.functional.loss import L1, BinaryCrossEntropy, KLDiv, SmoothL1

rng = np.random.default_rng(17)


def r(*shape):
    return rng.standard_normal(shape)


def probabilities(*shape):
    return rng.uniform(0.05, 0.95, shape)


def log_probabilities(*shape):
    logits = rng.standard_normal(shape)
    return logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))


def apart(*shape, avoid=(0.0,)):
    """Pairs (x, t) whose differences stay at least 0.05 from each value in avoid (and its negative)."""
    x, t = r(*shape), r(*shape)
    for value in avoid:
        for kink in (value, -value):
            close = np.abs((x - t) - kink) < 0.05
            x[close] += 0.1
    return [x, t]


SAMPLES = {
    BinaryCrossEntropy: [
        (lambda x, t: F.binary_cross_entropy(x, t), [probabilities(3, 4), probabilities(3, 4)]),
        (lambda x, t: F.binary_cross_entropy(x, t, reduction="none"), [probabilities(5), probabilities(5)]),
        (
            lambda x, t: F.binary_cross_entropy(
                x, t, weight=Tensor(np.linspace(0.5, 2, 4)).to(x.device), reduction="sum"
            ),
            [probabilities(2, 4), probabilities(2, 4)],
        ),
    ],
    L1: [
        (lambda x, t: F.l1_loss(x, t), apart(3, 4)),
        (lambda x, t: F.l1_loss(x, t, reduction="none"), apart(5)),
        (lambda x, t: F.l1_loss(x, t, reduction="sum"), apart(2, 3)),
    ],
    SmoothL1: [
        (lambda x, t: F.smooth_l1_loss(x, t), apart(4, 5, avoid=(0.0, 1.0))),
        (lambda x, t: F.smooth_l1_loss(x, t, beta=0.5, reduction="sum"), apart(4, 5, avoid=(0.0, 0.5))),
        (lambda x, t: F.smooth_l1_loss(x, t, beta=0.0, reduction="none"), apart(6)),  # beta 0: l1
    ],
    KLDiv: [
        (
            lambda x, t: F.kl_div(x, t, reduction="batchmean"),
            [log_probabilities(3, 4), np.exp(log_probabilities(3, 4))],
        ),
        (lambda x, t: F.kl_div(x, t, reduction="none"), [log_probabilities(2, 3), np.exp(log_probabilities(2, 3))]),
        (
            lambda x, t: F.kl_div(x, t, reduction="sum", log_target=True),
            [log_probabilities(3, 4), log_probabilities(3, 4)],
        ),
        (lambda x, t: F.kl_div(x, t, log_target=True), [log_probabilities(2, 5), log_probabilities(2, 5)]),
    ],
    CosineSimilarity: [
        (lambda a, b: F.cosine_similarity(a, b), [r(4, 5), r(4, 5)]),
        (lambda a, b: F.cosine_similarity(a, b, dim=-1), [r(2, 3, 4), r(3, 4)]),  # broadcast
        (lambda a, b: F.cosine_similarity(a, b, dim=0), [r(3, 2), r(3, 1)]),
    ],
}
