"""Export cases of the in-place Functions (merged by test_converters.py): each changes a non-leaf
in the middle of a forward, so that later ops must read the new value."""

from __future__ import annotations

import numpy as np

from kinone.autograd import Tensor
from kinone.autograd.ops import inplace

_rng = np.random.default_rng(16)
B3 = Tensor(_rng.uniform(0.5, 1.5, 3).astype(np.float32))


def _clone(x):
    return x * 1.0


def _operators(x):
    y = _clone(x)
    y += B3
    y *= 2.0
    y -= x
    y /= B3
    return y.exp()


CASES = {
    inplace.AddInPlace: [
        (lambda x: _clone(x).add_(B3).tanh(), (2, 3)),
        (lambda x: _clone(x).sub_(B3, alpha=2.0) * x, (2, 3)),
        (lambda x: _clone(x).add_(Tensor(np.ones(3))).exp(), (2, 3)),  # a float64 operand into float32
        (_operators, (2, 3)),
    ],
    inplace.MulInPlace: [(lambda x: _clone(x).mul_(B3).exp(), (2, 3)), (lambda x: _clone(x).mul_(x) + 1.0, (2, 3))],
    inplace.DivInPlace: [(lambda x: _clone(x).div_(B3).exp(), (2, 3))],
    inplace.ClampInPlace: [
        (lambda x: _clone(x).clamp_(-0.5, 0.5) * 2.0, (2, 3)),
        (lambda x: _clone(x).clamp_(max=0.1).exp(), (2, 3)),
    ],
    inplace.CopyInPlace: [(lambda x: _clone(x).copy_(B3) * x, (2, 3))],
    inplace.FillInPlace: [(lambda x: _clone(x).fill_(0.5) + x, (2, 3)), (lambda x: _clone(x).zero_() + x, (2, 3))],
}
