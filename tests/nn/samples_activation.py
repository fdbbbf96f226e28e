"""Gradcheck samples: activations and linear."""

import numpy as np

from kinone.nn import functional as F
from kinone.nn.functional.activation import GELU, Erf, SiLU
from kinone.nn.functional.linear import Linear

rng = np.random.default_rng(7)


def r(*shape):
    return rng.standard_normal(shape)


SAMPLES = {
    SiLU: [(F.silu, [r(3, 4) * 3])],
    GELU: [(F.gelu, [r(3, 4) * 2])],
    Erf: [(F.erf, [r(3, 4) * 1.5])],
    Linear: [
        (lambda x, w, b: F.linear(x, w, b), [r(5, 3), r(4, 3), r(4)]),
        (lambda x, w: F.linear(x, w), [r(2, 5, 3), r(4, 3)]),  # leading dims, no bias
        (lambda x, w, b: F.linear(x, w, b), [r(3), r(2, 3), r(2)]),  # a single vector
    ],
}
