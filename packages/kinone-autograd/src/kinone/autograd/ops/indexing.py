"""Indexing: `x[index]` with ints, slices, None, Ellipsis, integer and boolean arrays."""

from __future__ import annotations

import numpy as np

from ..function import Function


def _has_integer_array(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, np.ndarray) and p.dtype.kind in "iu" for p in parts)


class GetItem(Function):
    """y = x[index];  dL/dx = zeros like x with g added at `index`.

    With integer-array (fancy) indices an element may be picked several times; its
    gradients are then summed (`np.add.at`). Basic indices (ints, slices) pick each element
    at most once, so a plain assignment suffices.
    """

    @staticmethod
    def forward(ctx, x, *, index):
        ctx.input_shape = x.shape
        try:
            return x[index]
        except IndexError as error:
            raise IndexError(f"getitem: index {index!r} is invalid for a tensor of shape {x.shape}: {error}") from None

    @staticmethod
    def backward(ctx, grad):
        index = ctx.attrs["index"]
        full = np.zeros(ctx.input_shape, dtype=grad.dtype)
        if _has_integer_array(index):
            np.add.at(full, index, grad)
        else:
            full[index] = grad
        return full
