"""Reductions over one, several or all dims (`dim=None`), with PyTorch's `keepdim`."""

from __future__ import annotations

import numpy as np

from ..function import Function
from .promotion import floating, require_floating


def normalize_dims(op: str, dim, ndim: int):
    """`dim` (None, int or tuple, negatives allowed) as a sorted tuple of axes, or None for all.

    An empty tuple also means all dims, as in PyTorch (NumPy's `axis=()` reduces none).
    """
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    if not dims:
        return None
    out = []
    for d in dims:
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"{op}: dim {d} is out of range for a tensor of {ndim} dims")
        out.append(int(d) % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dim {dim} names a dimension twice")
    return tuple(sorted(out)) if ndim else None


def reduced_count(shape: tuple, axes) -> int:
    """Number of elements that were reduced into each output element."""
    if axes is None:
        return int(np.prod(shape, dtype=np.int64))
    return int(np.prod([shape[a] for a in axes], dtype=np.int64))


def expand_reduced(grad: np.ndarray, shape: tuple, axes, keepdim: bool) -> np.ndarray:
    """Broadcast an output gradient back over the reduced axes (a read-only view)."""
    if not keepdim and axes is not None:
        grad = np.expand_dims(grad, axes)
    return np.broadcast_to(grad, shape)


class Sum(Function):
    """y = Σ_dim x;  dL/dx = g broadcast back over the summed dims."""

    @staticmethod
    def forward(ctx, x, *, dim=None, keepdim=False):
        axes = normalize_dims("sum", dim, x.ndim)
        ctx.axes, ctx.keepdim, ctx.shape = axes, keepdim, x.shape
        return np.sum(x, axis=axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad):
        return expand_reduced(grad, ctx.shape, ctx.axes, ctx.keepdim)


class Mean(Function):
    """y = (1/N) Σ_dim x;  dL/dx = g / N broadcast back over the reduced dims."""

    @staticmethod
    def forward(ctx, x, *, dim=None, keepdim=False):
        require_floating("mean", x)
        axes = normalize_dims("mean", dim, x.ndim)
        ctx.axes, ctx.keepdim, ctx.shape = axes, keepdim, x.shape
        return np.mean(x, axis=axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad):
        count = reduced_count(ctx.shape, ctx.axes)
        return expand_reduced(grad / count, ctx.shape, ctx.axes, ctx.keepdim)


class _Extremum(Function):
    """Shared forward/backward of Amax and Amin."""

    reduce = None  # np.amax or np.amin
    name = ""

    @classmethod
    def _forward(cls, ctx, x, dim, keepdim):
        axes = normalize_dims(cls.name, dim, x.ndim)
        if x.size == 0:
            raise ValueError(f"{cls.name}: cannot reduce an empty tensor of shape {x.shape}")
        out = cls.reduce(x, axis=axes, keepdims=True)
        ctx.axes, ctx.keepdim = axes, keepdim
        if ctx.needs_input_grad[0]:
            # Ties share the gradient evenly, as torch.amax/amin do.
            mask = x == out
            ctx.save_for_backward(mask / mask.sum(axis=axes, keepdims=True, dtype=x.dtype))
        if not keepdim:
            out = out.reshape(()) if axes is None else np.squeeze(out, axis=axes)
        return out

    @staticmethod
    def backward(ctx, grad):
        (share,) = ctx.saved
        if not ctx.keepdim and ctx.axes is not None:
            grad = np.expand_dims(grad, ctx.axes)
        return grad * share


class Amax(_Extremum):
    """y = max_dim x;  dL/dx = g * [x == y] / (number of maxima)."""

    reduce = staticmethod(np.amax)
    name = "amax"

    @staticmethod
    def forward(ctx, x, *, dim=None, keepdim=False):
        return Amax._forward(ctx, x, dim, keepdim)


class Amin(_Extremum):
    """y = min_dim x;  dL/dx = g * [x == y] / (number of minima)."""

    reduce = staticmethod(np.amin)
    name = "amin"

    @staticmethod
    def forward(ctx, x, *, dim=None, keepdim=False):
        return Amin._forward(ctx, x, dim, keepdim)


class Var(Function):
    """y = Σ_dim (x - mean)² / (N - correction);  dL/dx = g * 2 (x - mean) / (N - correction)."""

    @staticmethod
    def forward(ctx, x, *, dim=None, keepdim=False, correction=1):
        require_floating("var", x)
        axes = normalize_dims("var", dim, x.ndim)
        centered = x - np.mean(x, axis=axes, keepdims=True)
        denominator = max(reduced_count(x.shape, axes) - correction, 0)
        ctx.axes, ctx.keepdim, ctx.denominator = axes, keepdim, denominator
        ctx.save_for_backward(centered)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sum(centered * centered, axis=axes, keepdims=keepdim) / x.dtype.type(denominator)

    @staticmethod
    def backward(ctx, grad):
        (centered,) = ctx.saved
        if not ctx.keepdim and ctx.axes is not None:
            grad = np.expand_dims(grad, ctx.axes)
        with np.errstate(divide="ignore", invalid="ignore"):  # N <= correction: NaN, as PyTorch
            return grad * centered * (centered.dtype.type(2) / centered.dtype.type(ctx.denominator))


class LogSumExp(Function):
    """y = m + log Σ_dim exp(x - m) with m = max_dim x (stable for |x| ~ 1e4);
    dL/dx = g * exp(x - y) = g * softmax(x)."""

    @staticmethod
    def forward(ctx, x, *, dim, keepdim=False):
        x = floating(x)
        axes = normalize_dims("logsumexp", dim, x.ndim)
        shift = np.amax(x, axis=axes, keepdims=True)
        shift = np.where(np.isfinite(shift), shift, 0)
        exp = np.exp(x - shift)
        total = np.sum(exp, axis=axes, keepdims=True)
        out = np.log(total) + shift
        ctx.axes, ctx.keepdim = axes, keepdim
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(exp / total)
        if not keepdim:
            out = out.reshape(()) if axes is None else np.squeeze(out, axis=axes)
        return out

    @staticmethod
    def backward(ctx, grad):
        (softmax,) = ctx.saved
        if not ctx.keepdim and ctx.axes is not None:
            grad = np.expand_dims(grad, ctx.axes)
        return grad * softmax
