"""Picking and placing elements along one dim by an index tensor: `gather`, `scatter`, and
`masked_fill`, with PyTorch's signatures.

    gather(x, dim, index)[i][j][k]  = x[index[i][j][k]][j][k]     (dim = 0)
    scatter(x, dim, index, src): out = x; out[index[i][j][k]][j][k] = src[i][j][k]

`index` has x's number of dims and is no larger than x in any dim but `dim` (nor than `src`
in any dim), as PyTorch requires; only its leading part of x (and of src) takes part.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..backend import get_array_module
from ..function import Function
from ..tensor import Tensor
from .indexing import scatter_add_deterministic
from .joining import Where
from .promotion import promote


def _check_index(op: str, x, index, axis: int, src=None) -> None:
    if index.dtype != np.int64:
        raise TypeError(f"{op}: index must be an int64 tensor (as in PyTorch), got dtype {index.dtype}")
    if index.ndim != x.ndim:
        raise ValueError(
            f"{op}: index has {index.ndim} dims but the tensor has {x.ndim} (shape {x.shape}); they must match"
        )
    if any(i > s for d, (i, s) in enumerate(zip(index.shape, x.shape)) if d != axis):
        raise ValueError(
            f"{op}: index of shape {index.shape} is larger than the tensor's shape {x.shape} outside dim {axis}"
        )
    if src is not None and (src.ndim != index.ndim or any(i > s for i, s in zip(index.shape, src.shape))):
        raise ValueError(f"{op}: index of shape {index.shape} is larger than src of shape {src.shape}")


def _axis(op: str, dim: int, ndim: int) -> int:
    size = max(ndim, 1)
    if not -size <= dim < size:
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor of {ndim} dims")
    return dim % size


def _leading(array, shape: tuple, keep_axis=None):
    """The leading block of `array` of `shape` (all of `keep_axis`)."""
    if array.shape == shape:
        return array
    return array[tuple(slice(None) if d == keep_axis else slice(0, s) for d, s in enumerate(shape))]


def full_index(index, axis: int) -> tuple:
    """The fancy index that `take_along_axis(x, index, axis)` stands for: `index` on `axis`,
    an arange along every other dim (broadcast against each other)."""
    xp = get_array_module(index)
    parts = []
    for d, size in enumerate(index.shape):
        if d == axis:
            parts.append(index)
        else:
            shape = [1] * index.ndim
            shape[d] = size
            parts.append(xp.arange(size, dtype=np.int64).reshape(shape))
    return tuple(parts)


def _out_of_range(op: str, size: int, error: IndexError) -> IndexError:
    return IndexError(
        f"{op}: an index is out of range for a dim of size {size} (negative indices count from the end): {error}"
    )


class Gather(Function):
    """y = x picked at `index` along `dim`: y[i][j][k] = x[index[i][j][k]][j][k] for dim 0 (torch.gather);
    dL/dx = zeros like x with g added at `index` along `dim` (repeated indices summed);
    the index gets no gradient."""

    @staticmethod
    def forward(ctx, x, index, *, dim):
        axis = _axis("gather", dim, x.ndim)
        _check_index("gather", x, index, axis)
        if x.ndim == 0:
            return x.copy()
        ctx.axis, ctx.input_shape = axis, x.shape
        ctx.save_for_backward(index)
        try:
            return np.take_along_axis(_leading(x, index.shape, axis), index, axis=axis)
        except IndexError as error:
            raise _out_of_range("gather", x.shape[axis], error) from None

    @staticmethod
    def backward(ctx, grad):
        if not ctx.input_shape:
            return grad, None
        (index,) = ctx.saved
        xp = get_array_module(grad)
        full = xp.zeros(ctx.input_shape, dtype=grad.dtype)
        where = full_index(index, ctx.axis)
        if xp is np:
            np.add.at(full, where, grad)
        else:
            scatter_add_deterministic(full, where, grad)
        return full, None


class Scatter(Function):
    """y = x with src written at `index` along `dim`: y[index[i][j][k]][j][k] = src[i][j][k] for
    dim 0 (torch.scatter; where an
    index repeats, the last write wins, one of PyTorch's allowed outcomes);
    dL/dx = g with the written positions zeroed;  dL/dsrc = g gathered at `index`."""

    @staticmethod
    def forward(ctx, x, index, src, *, dim):
        axis = _axis("scatter", dim, x.ndim)
        x, src = promote(x, src)
        if src.ndim == 0:
            src = np.broadcast_to(src, index.shape)
        _check_index("scatter", x, index, axis, src)
        where = full_index(index, axis)
        out = x.copy()
        try:
            out[where] = _leading(src, index.shape).astype(x.dtype, copy=False)
        except IndexError as error:
            raise _out_of_range("scatter", x.shape[axis] if x.ndim else 1, error) from None
        ctx.where, ctx.src_shape = where, src.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        grad_x = grad_src = None
        if ctx.needs_input_grad[0]:
            grad_x = grad.copy()
            grad_x[ctx.where] = 0
        if ctx.needs_input_grad[2]:
            xp = get_array_module(grad)
            grad_src = xp.zeros(ctx.src_shape, dtype=grad.dtype)
            picked = grad[ctx.where]
            grad_src[tuple(slice(0, s) for s in picked.shape)] = picked
        return grad_x, None, grad_src


def _index_tensor(op: str, index) -> Tensor:
    if not isinstance(index, Tensor):
        raise TypeError(f"{op}: index must be a Tensor, got {type(index).__name__}")
    return index


def _value_like(x: Tensor, value) -> Tensor:
    """A Python number as a 0-d tensor of x's dtype on x's device."""
    if isinstance(value, Tensor):
        return value
    if not isinstance(value, numbers.Number):
        raise TypeError(f"expected a Tensor or a number, got {type(value).__name__}")
    xp = get_array_module(x.data)
    return Tensor(xp.asarray(value, dtype=x.dtype))


def gather(input: Tensor, dim: int, index: Tensor) -> Tensor:
    """`input`'s elements picked along `dim` by `index` (torch.gather; see `Gather`)."""
    return Gather.apply(input, _index_tensor("gather", index), dim=dim)


def scatter(input: Tensor, dim: int, index: Tensor, src=None, *, value=None) -> Tensor:
    """A copy of `input` with `src` (a tensor, or a number: `value`) written at `index` along
    `dim` (torch.scatter; see `Scatter`)."""
    if (src is None) == (value is None):
        raise TypeError("scatter: give exactly one of src (a tensor) and value (a number)")
    source = src if src is not None else value
    return Scatter.apply(input, _index_tensor("scatter", index), _value_like(input, source), dim=dim)


def masked_fill(input: Tensor, mask: Tensor, value) -> Tensor:
    """`value` where `mask` (a bool tensor, broadcast to input) is True, else `input`: y =
    where(mask, value, x), so dL/dx = g where the mask is False (torch.masked_fill)."""
    if not isinstance(mask, Tensor) or mask.dtype != np.bool_:
        raise TypeError(f"masked_fill: mask must be a bool tensor, got {getattr(mask, 'dtype', type(mask).__name__)}")
    fill = _value_like(input, value)
    if fill.ndim != 0:
        raise ValueError(f"masked_fill: value must be a number or a 0-d tensor, got shape {fill.shape}")
    out = Where.apply(mask, fill, input)
    if out.shape != input.shape:
        raise ValueError(
            f"masked_fill: mask of shape {mask.shape} does not broadcast to the tensor's shape {input.shape}"
        )
    return out
