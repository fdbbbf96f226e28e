"""Export cases of the Tensor-API gap fillers (merged by test_converters.py): `tril`/`triu`
(Trilu; a constant mask at opset 13) and `x[index] = value` (ScatterND over the indexed dims,
the batch dim left dynamic when the index takes it whole)."""

from __future__ import annotations

import numpy as np

from kinone.autograd import Tensor
from kinone.autograd.ops import inplace, triangular

_rng = np.random.default_rng(1616)
ROW4 = Tensor(_rng.uniform(-1, 1, 4).astype(np.float32))
COL = Tensor(_rng.uniform(-1, 1, (3, 1)).astype(np.float32))


def _set(index, value=None):
    """x * 1.0 with `value` (or x's own slice, doubled) written at `index`, then used."""

    def fn(x):
        y = x * 1.0
        y[index] = (x[index] * 2.0) if value is None else value
        return y.exp()

    return fn


def _positional(x):
    """The Transformer's pattern inside a forward: columns of a fresh tensor set from x."""
    y = x * 0.0
    y[:, 0::2] = x[:, 0::2].sin()
    y[:, 1::2] = x[:, 1::2].cos()
    return y + x


CASES = {
    triangular.Tril: [
        (lambda x: x.tril() * 2.0, (2, 4, 4)),
        (lambda x: x.tril(-1) + 1.0, (2, 3, 5)),
        (lambda x: x.tril(1), (2, 3, 5), {"opset": 13, "dynamic_batch": False}),  # the mask form
    ],
    triangular.Triu: [
        (lambda x: x.triu(1) * 2.0, (2, 4, 4)),
        (lambda x: x.triu(diagonal=-1), (2, 5, 3), {"opset": 13}),  # the mask form, batch dynamic
    ],
    inplace.SetItemInPlace: [
        (_set((slice(None), 0), 0.5), (2, 4)),  # a number into a column of a dynamic batch
        (_set((slice(None), slice(1, 3))), (2, 4)),
        (_set((Ellipsis, slice(None, None, 2)), ROW4[:2]), (2, 3, 4)),  # broadcast over two dims
        (_set((slice(None), 1, slice(0, 3)), COL.reshape(1, 3)), (2, 3, 4)),  # an int dim dropped, value broadcast
        (_set(0, ROW4), (3, 4), {"dynamic_batch": False}),  # the first dim restricted: fixed size
        (_set(Ellipsis, 1.0), (2, 3)),
        (_positional, (2, 6)),
    ],
}
