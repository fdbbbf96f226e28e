"""Gradcheck samples: leaky_relu, elu, softplus, relu6, hardsigmoid, hardswish, mish. Inputs
are spread over every piece of each function (x · 4 covers -3, 3 and 6) and drawn so that no
element sits within the finite-difference step of a kink."""

import numpy as np

from kinone.nn import functional as F
from kinone.nn.functional.activation import ELU, Hardsigmoid, Hardswish, LeakyReLU, Mish, ReLU6, Softplus

rng = np.random.default_rng(61)


def away_from(kinks, *shape, scale=4.0):
    """Normal draws · scale with every element at least 1e-3 from each kink."""
    x = rng.standard_normal(shape) * scale
    for kink in kinks:
        near = np.abs(x - kink) < 1e-3
        x[near] += 2e-3
    return x


SAMPLES = {
    LeakyReLU: [(F.leaky_relu, [away_from([0], 3, 4)]), (lambda x: F.leaky_relu(x, 0.2), [away_from([0], 2, 5)])],
    ELU: [(F.elu, [away_from([0], 3, 4)]), (lambda x: F.elu(x, alpha=0.5), [away_from([0], 2, 5)])],
    Softplus: [
        (F.softplus, [away_from([], 3, 4)]),
        (lambda x: F.softplus(x, beta=2.0, threshold=5.0), [away_from([2.5], 3, 4)]),
    ],  # both sides of βx = 5
    ReLU6: [(F.relu6, [away_from([0, 6], 3, 4)])],
    Hardsigmoid: [(F.hardsigmoid, [away_from([-3, 3], 3, 4)])],
    Hardswish: [(F.hardswish, [away_from([-3, 3], 3, 4)])],
    Mish: [(F.mish, [away_from([], 3, 4)])],
}
