"""Gradcheck samples of the Tensor-API gap fillers (merged by test_gradcheck.py): the triangles
(`tril`, `triu`) and `x[index] = value` (SetItemInPlace).

A setitem on a leaf that requires grad is refused, so each sample writes into a non-leaf copy
(`a * 1.0`) or into a fresh tensor that does not require grad, and checks the gradient through
the copy's history (zero where overwritten) and through the value (summed where broadcast).
"""

from __future__ import annotations

import numpy as np

from kinone.autograd.ops import inplace, triangular

rng = np.random.default_rng(1616)


def r(*shape):
    return rng.standard_normal(shape)


def _set(index):
    """fn(a, v): a copy of `a` with `v` written at `index`, times `a` (so a's gradient has both paths)."""

    def fn(a, v):
        y = a * 1.0
        y[index] = v
        return y * a

    return fn


def _into_zeros(v):
    """The Transformer's positional-encoding pattern, with a value that requires grad."""
    y = v.new_zeros(4, 6)  # v's dtype and device
    y[:, 0::2] = v.sin()
    y[:, 1::2] = v.cos()
    return y


SAMPLES = {
    triangular.Tril: [
        (lambda a: a.tril(), [r(4, 4)]),
        (lambda a: a.tril(diagonal=1), [r(2, 3, 5)]),  # a batch of wide matrices
        (lambda a: a.tril(-1), [r(5, 3)]),
    ],
    triangular.Triu: [
        (lambda a: a.triu(), [r(4, 4)]),
        (lambda a: a.triu(diagonal=-1), [r(2, 5, 3)]),
        (lambda a: a.triu(2), [r(3, 5)]),
    ],
    inplace.SetItemInPlace: [
        (_set((slice(None), slice(0, None, 2))), [r(3, 4), r(3, 2)]),
        (_set(1), [r(3, 4), r(4)]),
        (_set((Ellipsis, 0)), [r(2, 3, 4), r(3, 1)[:, 0]]),  # broadcast over the leading dim
        (_set((slice(None), 2)), [r(3, 4), r()]),  # a 0-d value broadcast over a column
        (_set(np.array([2, 0])), [r(4, 3), r(2, 3)]),  # integer-array index
        (_set(np.array([True, False, True])), [r(3, 2), r(2)]),  # boolean mask, broadcast value
        (_into_zeros, [r(4, 3)]),
    ],
}
