"""Triangles of matrices: `tril` and `triu` (torch.tril, torch.triu and their Tensor methods).

Both work on the last two dims of a tensor of 2 or more dims (a batch of matrices), element
(i, j) being kept or zeroed by its diagonal offset j - i against `diagonal`.
"""

from __future__ import annotations

import operator

from ..backend import get_array_module
from ..function import Function


class Tril(Function):
    """y = x where j - i <= diagonal, 0 elsewhere (the lower triangle of the last two dims);
    dL/dx = g where j - i <= diagonal, 0 elsewhere."""

    @staticmethod
    def forward(ctx, x, *, diagonal=0):
        ctx.diagonal = diagonal
        return get_array_module(x).tril(x, diagonal)

    @staticmethod
    def backward(ctx, grad):
        return get_array_module(grad).tril(grad, ctx.diagonal)


class Triu(Function):
    """y = x where j - i >= diagonal, 0 elsewhere (the upper triangle of the last two dims);
    dL/dx = g where j - i >= diagonal, 0 elsewhere."""

    @staticmethod
    def forward(ctx, x, *, diagonal=0):
        ctx.diagonal = diagonal
        return get_array_module(x).triu(x, diagonal)

    @staticmethod
    def backward(ctx, grad):
        return get_array_module(grad).triu(grad, ctx.diagonal)


def _check(name: str, input, diagonal) -> int:
    if input.ndim < 2:
        raise RuntimeError(f"{name}: input tensor must have at least 2 dimensions, got shape {tuple(input.shape)}")
    try:
        return operator.index(diagonal)
    except TypeError:
        raise TypeError(f"{name}: diagonal must be an int, got {type(diagonal).__name__}") from None


def tril(input, diagonal: int = 0):
    """The lower triangle of `input`'s last two dims: elements with j - i <= diagonal kept, the
    rest 0 (torch.tril; diagonal 0 is the main diagonal, > 0 above it, < 0 below it)."""
    return Tril.apply(input, diagonal=_check("tril", input, diagonal))


def triu(input, diagonal: int = 0):
    """The upper triangle of `input`'s last two dims: elements with j - i >= diagonal kept, the
    rest 0 (torch.triu)."""
    return Triu.apply(input, diagonal=_check("triu", input, diagonal))
