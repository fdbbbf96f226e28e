"""Arg-reductions, sorting and top-k, with PyTorch's signatures and (values, indices) tuples.

An index op (ArgMax, ArgMin, Argsort, TopKIndices) makes int64 indices and has no gradient,
as in PyTorch. The values are then picked from the input by `Gather`, so the gradient goes to
exactly the positions returned, as PyTorch's `max(dim)`, `sort` and `topk` send it (while
`max()` over all elements is `amax`, which shares it among ties).

Ties: `argmax`/`argmin`/`max(dim)`/`min(dim)` return the first of tied elements (a NaN counts
as the extremum), as PyTorch documents. `sort` is always stable here (ties keep their order,
in either direction), which is what PyTorch's `stable=True` promises and what its default
gives on small inputs; `topk` picks tied elements lowest index first (PyTorch leaves that
order to the implementation).
"""

from __future__ import annotations

import builtins

import numpy as np

from ..function import Function
from ..grad_mode import is_grad_enabled
from ..tensor import Tensor
from . import return_types
from .gather_scatter import Gather
from .joining import Maximum, Minimum
from .reduction import Amax, Amin, normalize_dims


def _axis(op: str, dim: int, ndim: int) -> int:
    (axis,) = normalize_dims(op, dim, ndim) or (0,)
    return axis


def stable_argsort(x, axis: int, descending: bool):
    """Indices that sort `x` along `axis`, ties in their original order either way (for a
    descending sort: the reversed array sorted ascending, read backwards)."""
    if not descending:
        return np.argsort(x, axis=axis, kind="stable")
    order = np.argsort(np.flip(x, axis), axis=axis, kind="stable")
    return (x.shape[axis] - 1) - np.flip(order, axis)


class _IndexFunction(Function):
    """An op whose output is int64 indices: outside the graph (it has no gradient)."""

    @staticmethod
    def backward(ctx, grad):  # pragma: no cover - never recorded (see `_indices`)
        return None


class ArgMax(_IndexFunction):
    """y = the index of the largest x along `dim` (over the flattened x when dim is None), the
    first of ties;  dL/dx: none (int64 indices)."""

    @staticmethod
    def forward(ctx, x, *, dim=None, keepdim=False):
        return _arg_extremum("argmax", np.argmax, x, dim, keepdim)


class ArgMin(_IndexFunction):
    """y = the index of the smallest x along `dim` (over the flattened x when dim is None), the
    first of ties;  dL/dx: none (int64 indices)."""

    @staticmethod
    def forward(ctx, x, *, dim=None, keepdim=False):
        return _arg_extremum("argmin", np.argmin, x, dim, keepdim)


def _arg_extremum(op: str, reduce, x, dim, keepdim: bool):
    if x.size == 0:
        raise ValueError(f"{op}: cannot reduce an empty tensor of shape {x.shape}")
    if dim is None or x.ndim == 0:
        if dim is not None:
            normalize_dims(op, dim, 0)
        out = reduce(x.reshape(-1), axis=0)
        return out.astype(np.int64).reshape((1,) * x.ndim if keepdim else ())
    return reduce(x, axis=_axis(op, dim, x.ndim), keepdims=keepdim).astype(np.int64, copy=False)


class Argsort(_IndexFunction):
    """y = the indices that sort x along `dim` (stable; descending when asked);
    dL/dx: none (int64 indices)."""

    @staticmethod
    def forward(ctx, x, *, dim=-1, descending=False):
        if x.ndim == 0:
            return np.zeros_like(x, dtype=np.int64)
        return stable_argsort(x, _axis("sort", dim, x.ndim), descending).astype(np.int64, copy=False)


class TopKIndices(_IndexFunction):
    """y = the indices of the k largest (smallest when not `largest`) x along `dim`, in sorted
    order, ties lowest index first;  dL/dx: none (int64 indices)."""

    @staticmethod
    def forward(ctx, x, *, k, dim=-1, largest=True):
        axis = _axis("topk", dim, x.ndim) if x.ndim else 0
        size = x.shape[axis] if x.ndim else 1
        if not 0 <= k <= size:
            raise ValueError(f"topk: k ({k}) is out of range for dim {dim} of size {size} (shape {x.shape})")
        if x.ndim == 0:
            return np.zeros_like(x, dtype=np.int64)
        order = stable_argsort(x, axis, largest)
        return order[(slice(None),) * axis + (slice(0, k),)].astype(np.int64, copy=False)


def _indices(function, x: Tensor, **attrs) -> Tensor:
    """Apply an index Function: to a detached x in grad mode (integers have no gradient, and
    the graph takes only floating outputs); to x itself otherwise, so a trace sees the input."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{function.__name__}: expected a Tensor, got {type(x).__name__}")
    source = x.detach() if x.requires_grad and is_grad_enabled() else x
    return function.apply(source, **attrs)


def _pick(x: Tensor, indices: Tensor, dim: int) -> Tensor:
    """x's values at `indices` along dim (a 0-d x is its own value)."""
    return Gather.apply(x, indices, dim=dim) if x.ndim else x.clone()


def argmax(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Index of the largest element along `dim`, or of the flattened tensor (torch.argmax)."""
    return _indices(ArgMax, input, dim=dim, keepdim=keepdim)


def argmin(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Index of the smallest element along `dim`, or of the flattened tensor (torch.argmin)."""
    return _indices(ArgMin, input, dim=dim, keepdim=keepdim)


def _extremum(op: str, index_function, reduce_all, elementwise, named, input, dim, keepdim):
    if isinstance(dim, Tensor):  # max(input, other): elementwise
        return elementwise.apply(input, dim)
    if dim is None:
        if keepdim:
            raise TypeError(f"{op}: keepdim needs a dim (as in PyTorch)")
        return reduce_all.apply(input, dim=None, keepdim=False)
    indices = _indices(index_function, input, dim=dim, keepdim=True)
    values = _pick(input, indices, dim)
    if not keepdim and input.ndim:
        values, indices = values.squeeze(dim), indices.squeeze(dim)
    return named(values, indices)


def max(input: Tensor, dim=None, keepdim: bool = False):
    """torch.max: `max(x)` the largest element (a tensor; the gradient shared among ties);
    `max(x, dim, keepdim=False)` the named tuple (values, indices) of the largest along dim
    (first of ties; the gradient to that index); `max(x, other)` the elementwise maximum."""
    return _extremum("max", ArgMax, Amax, Maximum, return_types.max, input, dim, keepdim)


def min(input: Tensor, dim=None, keepdim: bool = False):
    """torch.min: as `max`, for the smallest."""
    return _extremum("min", ArgMin, Amin, Minimum, return_types.min, input, dim, keepdim)


def sort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False):
    """The named tuple (values, indices) of `input` sorted along `dim` (torch.sort). Always
    stable here, so `stable` changes nothing; the gradient flows to the values' positions."""
    indices = _indices(Argsort, input, dim=dim, descending=bool(descending))
    return return_types.sort(_pick(input, indices, dim), indices)


def argsort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """The indices of `sort(input, dim, descending)` (torch.argsort)."""
    return _indices(Argsort, input, dim=dim, descending=bool(descending))


def topk(input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    """The named tuple (values, indices) of the `k` largest (smallest when not `largest`)
    elements along `dim` (torch.topk); always in sorted order; gradient to the values."""
    indices = _indices(TopKIndices, input, k=builtins.int(k), dim=dim, largest=bool(largest))
    return return_types.topk(_pick(input, indices, dim), indices)
