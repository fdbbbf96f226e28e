"""Ops over several tensors: concatenation, stacking, elementwise selection."""

from __future__ import annotations

import itertools

import numpy as np

from ..backend import get_array_module
from ..function import Function
from .promotion import promote


def _axis(op: str, dim: int, ndim: int) -> int:
    if not -ndim <= dim < ndim:
        raise IndexError(f"{op}: dim {dim} is out of range for tensors of {ndim} dims")
    return dim % ndim


class Cat(Function):
    """y = [x₁, x₂, …] joined along `dim`;  dL/dxᵢ = the slice of g that xᵢ filled."""

    @staticmethod
    def forward(ctx, *xs, dim=0):
        if not xs:
            raise ValueError("cat: expected at least one tensor")
        xs = promote(*xs)
        axis = _axis("cat", dim, xs[0].ndim)
        for i, x in enumerate(xs):
            if (
                x.ndim != xs[0].ndim
                or x.shape[:axis] + x.shape[axis + 1 :] != xs[0].shape[:axis] + xs[0].shape[axis + 1 :]
            ):
                raise ValueError(
                    f"cat: tensor {i} has shape {x.shape} but tensor 0 has shape {xs[0].shape}; "
                    f"all dims except dim {dim} must match"
                )
        ctx.axis = axis
        ctx.boundaries = list(itertools.accumulate(x.shape[axis] for x in xs[:-1]))  # Python ints: any device
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        return tuple(np.split(grad, ctx.boundaries, axis=ctx.axis))


class Stack(Function):
    """y = [x₁, x₂, …] stacked along a new dim `dim`;  dL/dxᵢ = g indexed at i along `dim`."""

    @staticmethod
    def forward(ctx, *xs, dim=0):
        if not xs:
            raise ValueError("stack: expected at least one tensor")
        for i, x in enumerate(xs):
            if x.shape != xs[0].shape:
                raise ValueError(f"stack: tensor {i} has shape {x.shape} but tensor 0 has shape {xs[0].shape}")
        xs = promote(*xs)
        ctx.axis = _axis("stack", dim, xs[0].ndim + 1)
        return np.stack(xs, axis=ctx.axis)

    @staticmethod
    def backward(ctx, grad):
        return tuple(np.moveaxis(grad, ctx.axis, 0))


class Where(Function):
    """y = a where cond else b;  dL/da = g * cond,  dL/db = g * ¬cond  (cond gets no gradient)."""

    @staticmethod
    def forward(ctx, cond, a, b):
        if cond.dtype != np.bool_:
            raise TypeError(f"where: the condition must be a boolean tensor, got dtype {cond.dtype}")
        a, b = promote(a, b)
        try:
            out = np.where(cond, a, b)
        except ValueError:
            raise ValueError(
                f"where: shapes {cond.shape}, {a.shape} and {b.shape} cannot be broadcast together"
            ) from None
        ctx.save_for_backward(cond)
        return out

    @staticmethod
    def backward(ctx, grad):
        (cond,) = ctx.saved
        zero = get_array_module(grad).zeros((), dtype=grad.dtype)
        grad_a = np.where(cond, grad, zero) if ctx.needs_input_grad[1] else None
        grad_b = np.where(cond, zero, grad) if ctx.needs_input_grad[2] else None
        return None, grad_a, grad_b


class Maximum(Function):
    """y = max(a, b) elementwise;  dL/da = g * ([a > b] + ½[a = b]),  dL/db = g * ([b > a] + ½[a = b])
    (ties split the gradient in half, as torch.maximum)."""

    @staticmethod
    def forward(ctx, a, b):
        a, b = promote(a, b)
        try:
            out = np.maximum(a, b)
        except ValueError:
            raise ValueError(f"maximum: shapes {a.shape} and {b.shape} cannot be broadcast together") from None
        ctx.save_for_backward(a, b)
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        share_a = (a > b) + 0.5 * (a == b)
        return grad * share_a, grad * (1 - share_a)


class Minimum(Function):
    """y = min(a, b) elementwise;  dL/da = g * ([a < b] + ½[a = b]),  dL/db = g * ([b < a] + ½[a = b])
    (ties split the gradient in half, as torch.minimum)."""

    @staticmethod
    def forward(ctx, a, b):
        a, b = promote(a, b)
        try:
            out = np.minimum(a, b)
        except ValueError:
            raise ValueError(f"minimum: shapes {a.shape} and {b.shape} cannot be broadcast together") from None
        ctx.save_for_backward(a, b)
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        share_a = (a < b) + 0.5 * (a == b)
        return grad * share_a, grad * (1 - share_a)
