"""The Functions behind Tensor's in-place methods (`add_`, `mul_`, `copy_`, ...; see inplace.py).

Each forward writes its result into the array of its first input `y` (the tensor being changed)
and returns that same array; `kinone.autograd.inplace.apply_in_place` runs it, bumps the
tensor's version and, when recording, makes this node the tensor's new `grad_fn`, with the
tensor's previous history as its first edge. Backward gives the gradient with respect to the
*old* value of `y` (and to the other inputs), so a chain of in-place ops on a non-leaf tensor
differentiates as PyTorch's does.

A forward never saves `y`'s own array (it is overwritten): where backward needs the old value,
it saves a copy, and only when that gradient is wanted.
"""

from __future__ import annotations

import numpy as np

from ..backend import device_of, get_array_module
from ..function import Function
from .indexing import _on_device


def _private(other, y):
    """`other`, copied if it is (a view of) the array `y` that forward overwrites (y.mul_(y))."""
    own = y if y.base is None else y.base
    if other is y or other.base is own or other is own:
        return other.copy()
    return other


class AddInPlace(Function):
    """y ← y + alpha·o (add_, sub_ with -alpha, +=, -=);  dL/dy = g;  dL/do = alpha·g."""

    @staticmethod
    def forward(ctx, y, other, alpha=1):
        np.add(y, other if alpha == 1 else other * alpha, out=y)
        return y

    @staticmethod
    def backward(ctx, grad):
        alpha = ctx.attrs.get("alpha", 1)
        return grad, (grad if alpha == 1 else grad * alpha)


class MulInPlace(Function):
    """y ← y·o (mul_, *=);  dL/dy = g·o;  dL/do = g·y_old (a copy of y kept when o needs it)."""

    @staticmethod
    def forward(ctx, y, other):
        other = _private(other, y)
        old = y.copy() if ctx.needs_input_grad[1] else None
        ctx.save_for_backward(other, old)
        np.multiply(y, other, out=y)
        return y

    @staticmethod
    def backward(ctx, grad):
        other, old = ctx.saved
        return grad * other, (None if old is None else grad * old)


class DivInPlace(Function):
    """y ← y / o (div_, /=);  dL/dy = g / o;  dL/do = -g·y_old / o²."""

    @staticmethod
    def forward(ctx, y, other):
        other = _private(other, y)
        old = y.copy() if ctx.needs_input_grad[1] else None
        ctx.save_for_backward(other, old)
        np.divide(y, other, out=y)
        return y

    @staticmethod
    def backward(ctx, grad):
        other, old = ctx.saved
        grad_y = grad / other
        return grad_y, (None if old is None else -grad_y * old / other)


class ClampInPlace(Function):
    """y ← min(max(y, min), max) (clamp_);  dL/dy = g where min <= y_old <= max, else 0."""

    @staticmethod
    def forward(ctx, y, min=None, max=None):
        if ctx.needs_input_grad[0]:
            inside = np.ones_like(y, dtype=bool)
            if min is not None:
                inside &= y >= min
            if max is not None:
                inside &= y <= max
            ctx.save_for_backward(inside)
        np.clip(y, min, max, out=y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved
        return grad * inside


class FillInPlace(Function):
    """y ← v everywhere (fill_, zero_; v a number attribute or a 0-d tensor input);
    dL/dy = 0;  dL/dv = sum(g)."""

    @staticmethod
    def forward(ctx, y, value=None, fill=0):
        y[...] = fill if value is None else value
        return y

    @staticmethod
    def backward(ctx, grad):
        zeros = np.zeros_like(grad)
        return (zeros,) if len(ctx.needs_input_grad) == 1 else (zeros, grad.sum(keepdims=True).reshape(()))


class CopyInPlace(Function):
    """y ← src broadcast to y's shape, cast to y's dtype (copy_);  dL/dy = 0;  dL/dsrc = g
    (summed over the broadcast dims and cast back by the engine)."""

    @staticmethod
    def forward(ctx, y, src):
        y[...] = src
        return y

    @staticmethod
    def backward(ctx, grad):
        return np.zeros_like(grad), grad


class RandomInPlace(Function):
    """y ← draws of U[low, high) (uniform_) or N(mean, std²) (normal_) from the device's generator;
    dL/dy = 0 (the new values do not depend on the old ones)."""

    @staticmethod
    def forward(ctx, y, distribution, a, b, generator=None):
        if generator is None:
            from ..creation import default_generator

            generator = default_generator(device_of(y))
        dtype = y.dtype if y.dtype in (np.float32, np.float64) else np.float32
        if distribution == "uniform":
            draws = generator.random(y.shape, dtype=dtype)
            y[...] = draws * (b - a) + a
        else:
            draws = generator.standard_normal(y.shape, dtype=dtype)
            y[...] = draws * b + a
        return y

    @staticmethod
    def backward(ctx, grad):
        return np.zeros_like(grad)


def _sum_to(grad, shape: tuple):
    """`grad`, shaped like the indexed region, summed to `shape` (the value's, which broadcast to
    the region; numpy also lets a value carry extra leading 1s)."""
    inner = shape[max(len(shape) - grad.ndim, 0) :]
    lead = grad.ndim - len(inner)
    broadcast = (lead + i for i, size in enumerate(inner) if size == 1 and grad.shape[lead + i] != 1)
    axes = (*range(lead), *broadcast)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


class SetItemInPlace(Function):
    """y[index] ← v (`y[index] = v`: v broadcast to the shape of y[index], cast to y's dtype);
    dL/dy = g with g[index] = 0 (the overwritten entries no longer reach the output);
    dL/dv = g[index], summed over the dims along which v was broadcast.

    `index` is anything NumPy indexing takes (ints, slices, None, Ellipsis, integer and
    boolean arrays); with a repeated integer index the last write wins, as in NumPy, and each
    repeat passes its gradient to v, as PyTorch's index_put_.
    """

    @staticmethod
    def forward(ctx, y, value, *, index):
        if type(y) is not np.ndarray:
            index = _on_device(index, get_array_module(y))
        ctx.index = index
        try:
            y[index] = value
        except IndexError as error:
            raise IndexError(f"setitem: index {index!r} is invalid for a tensor of shape {y.shape}: {error}") from None
        except ValueError:
            raise RuntimeError(
                f"setitem: a value of shape {value.shape} does not broadcast to the shape "
                f"{y[index].shape} of the indexed region of a tensor of shape {y.shape}"
            ) from None
        return y

    @staticmethod
    def backward(ctx, grad):
        index = ctx.index
        grad_y = grad_value = None
        if ctx.needs_input_grad[0]:
            grad_y = grad.copy()
            grad_y[index] = 0
        if ctx.needs_input_grad[1]:
            grad_value = _sum_to(grad[index], ctx.input_shapes[1])
        return grad_y, grad_value
