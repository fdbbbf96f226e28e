"""Gradcheck samples of the in-place Functions (kinone.autograd.ops.inplace), merged by test_gradcheck.py.

An in-place op on a leaf that requires grad is refused, so each sample changes a non-leaf copy
(`a * 1.0`) and checks the gradient through its history and through the other operand.
"""

from __future__ import annotations

import numpy as np

from kinone.autograd.ops import inplace

rng = np.random.default_rng(2024)


def r(*shape):
    return rng.standard_normal(shape)


def pos(*shape):
    return rng.uniform(0.5, 2.0, shape)


SAMPLES = {
    inplace.AddInPlace: [
        (lambda a, b: (a * 1.0).add_(b), [r(3, 4), r(3, 4)]),
        (lambda a, b: (a * 1.0).add_(b, alpha=-2.5), [r(2, 3), r(3)]),  # broadcast other
        (lambda a, b: (a * 1.0).sub_(b, alpha=0.5), [r(3), r(1)]),
        (lambda a: (a * 2.0).add_(3.0) * a, [r(4)]),
    ],
    inplace.MulInPlace: [
        (lambda a, b: (a * 1.0).mul_(b), [r(3, 4), r(4)]),
        (lambda a: (a + 1.0).mul_(a), [r(5)]),  # the other operand is the changed tensor's own input
        (lambda a: (a * 1.0).mul_(-1.5), [r(2, 3)]),
    ],
    inplace.DivInPlace: [
        (lambda a, b: (a * 1.0).div_(b), [r(3, 4), pos(3, 1)]),
        (lambda a: (a * 3.0).div_(2.0), [r(3)]),
    ],
    inplace.ClampInPlace: [
        (lambda a: (a * 1.0).clamp_(-0.5, 0.5), [np.array([-1.2, -0.3, 0.1, 0.4, 0.9, 2.0])]),
        (lambda a: (a * 1.0).clamp_(min=0.2), [np.array([-1.0, 0.5, 1.5])]),
    ],
    inplace.FillInPlace: [
        (lambda a: (a * 1.0).fill_(2.0) + a, [r(3)]),
        (lambda a, v: (a * 1.0).fill_(v) * a, [r(2, 3), r()]),
        (lambda a: (a * 1.0).zero_() + a * a, [r(4)]),
    ],
    inplace.CopyInPlace: [
        (lambda a, b: (a * 1.0).copy_(b) * a, [r(2, 3), r(2, 3)]),
        (lambda a, b: (a * 1.0).copy_(b), [r(2, 3), r(3)]),  # broadcast source
    ],
    # Degenerate ranges make the draws deterministic, as finite differences need.
    inplace.RandomInPlace: [
        (lambda a: (a * 1.0).uniform_(0.5, 0.5) + a, [r(3)]),
        (lambda a: (a * 1.0).normal_(mean=1.5, std=0.0) * a, [r(2, 2)]),
    ],
}
