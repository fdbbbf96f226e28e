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


def _exclusive_products(x, axis: int):
    """For each element, the product of the others along `axis` (no division, so zeros are
    exact): the running product before it times the running product after it."""
    moved = np.moveaxis(x, axis, -1)
    ones = np.ones_like(moved[..., :1])
    before = np.cumprod(np.concatenate([ones, moved[..., :-1]], axis=-1), axis=-1)
    after = np.flip(np.cumprod(np.concatenate([ones, np.flip(moved, -1)[..., :-1]], axis=-1), axis=-1), -1)
    return np.moveaxis(before * after, -1, axis)


class Prod(Function):
    """y = Π_dim x (over all elements when dim is None);  dL/dx = g * Π of the other elements
    (computed from running products, not y / x, so a zero in x is exact, as PyTorch's)."""

    @staticmethod
    def forward(ctx, x, *, dim=None, keepdim=False):
        axes = normalize_dims("prod", dim, x.ndim)
        if axes is not None and len(axes) != 1:
            raise ValueError(f"prod: dim must be one int or None (as in PyTorch), got {dim}")
        ctx.axes, ctx.keepdim, ctx.shape = axes, keepdim, x.shape
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x)
        out = np.prod(x, axis=axes, keepdims=keepdim)
        return out.astype(np.int64) if x.dtype.kind in "biu" else out

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        if ctx.axes is None:
            others = _exclusive_products(x.reshape(-1), 0).reshape(x.shape)
        else:
            others = _exclusive_products(x, ctx.axes[0])
        return expand_reduced(grad, ctx.shape, ctx.axes, ctx.keepdim) * others


class Cumsum(Function):
    """y = the running sum along `dim`: y_i = Σ_{j <= i} x_j;  dL/dx_j = Σ_{i >= j} g_i (the
    running sum of g taken from the end)."""

    @staticmethod
    def forward(ctx, x, *, dim):
        (axis,) = normalize_dims("cumsum", dim, x.ndim) or (0,)
        ctx.axis = axis
        if x.ndim == 0:
            return x.astype(np.int64) if x.dtype.kind in "biu" else x.copy()
        out = np.cumsum(x, axis=axis)
        return out.astype(np.int64, copy=False) if x.dtype.kind in "biu" else out

    @staticmethod
    def backward(ctx, grad):
        if grad.ndim == 0:
            return grad
        return np.flip(np.cumsum(np.flip(grad, ctx.axis), axis=ctx.axis), ctx.axis)


class Norm(Function):
    """y = (Σ_dim |x|^p)^(1/p) (p = 2 unless given; max|x| for p = inf, min|x| for -inf,
    the count of non-zeros for p = 0);
    dL/dx = g * sign(x) * |x|^(p-1) / y^(p-1)  (g x / y for p = 2, g sign(x) for p = 1; 0 where
    y = 0, as PyTorch); for p = ±inf the gradient g sign(x) is shared among the tied extrema."""

    @staticmethod
    def forward(ctx, x, *, p=2.0, dim=None, keepdim=False):
        require_floating("norm", x)
        axes = normalize_dims("norm", dim, x.ndim)
        ctx.axes, ctx.keepdim, ctx.p, ctx.shape = axes, keepdim, p, x.shape
        magnitude = np.abs(x)
        if p == np.inf or p == -np.inf:
            reduce = np.amax if p > 0 else np.amin
            out = reduce(magnitude, axis=axes, keepdims=True)
            mask = magnitude == out
            ctx.save_for_backward(x, mask / mask.sum(axis=axes, keepdims=True, dtype=x.dtype))
        elif p == 0:
            out = np.sum(magnitude != 0, axis=axes, keepdims=True).astype(x.dtype)
        elif p == 2:
            out = np.sqrt(np.sum(x * x, axis=axes, keepdims=True))
            ctx.save_for_backward(x, out)
        else:
            out = np.sum(magnitude**p, axis=axes, keepdims=True) ** (1 / p)
            ctx.save_for_backward(x, out)
        if not keepdim:
            out = out.reshape(()) if axes is None else np.squeeze(out, axis=axes)
        return out

    @staticmethod
    def backward(ctx, grad):
        if not ctx.keepdim and ctx.axes is not None:
            grad = np.expand_dims(grad, ctx.axes)
        p = ctx.p
        if p == 0:
            return np.broadcast_to(grad * 0, ctx.shape)
        x, saved = ctx.saved
        if p == np.inf or p == -np.inf:
            return grad * np.sign(x) * saved
        if p == 1:
            return grad * np.sign(x)
        out = saved
        with np.errstate(divide="ignore", invalid="ignore"):
            if p == 2:
                scaled = x / out
            else:
                scaled = np.sign(x) * np.abs(x) ** (p - 1) / out ** (p - 1)
        return grad * np.where(out == 0, 0, scaled)


# The functional forms (torch.prod, torch.cumsum, torch.norm); Tensor binds them as methods.
def _cast_first(input, dtype):
    return input if dtype is None else input.to(dtype)


def prod(input, dim=None, keepdim: bool = False, *, dtype=None):
    """Product of the elements along `dim` (one int) or of all of them (see `Prod`)."""
    return Prod.apply(_cast_first(input, dtype), dim=dim, keepdim=keepdim)


def cumsum(input, dim: int, *, dtype=None):
    """Running sum along `dim` (see `Cumsum`); integers sum in int64, as in PyTorch."""
    return Cumsum.apply(_cast_first(input, dtype), dim=dim)


def norm(input, p="fro", dim=None, keepdim: bool = False, dtype=None):
    """The vector p-norm over `dim` (all elements when None); p = "fro" is 2 (see `Norm`)."""
    if p == "fro":
        p = 2.0
    elif isinstance(p, str):
        raise ValueError(f"norm: p={p!r} is not supported (Kinone has the vector norms: a number, inf, -inf or 'fro')")
    return Norm.apply(_cast_first(input, dtype), p=float(p), dim=dim, keepdim=keepdim)
