"""Elementwise unary functions."""

from __future__ import annotations

import numbers

import numpy as np

from ..function import Function
from .promotion import floating


class Exp(Function):
    """y = exp(x);  dL/dx = g * y."""

    @staticmethod
    def forward(ctx, x):
        out = np.exp(floating(x))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad * out


class Log(Function):
    """y = log(x);  dL/dx = g / x."""

    @staticmethod
    def forward(ctx, x):
        x = floating(x)
        ctx.save_for_backward(x)
        return np.log(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad / x


class Sqrt(Function):
    """y = sqrt(x);  dL/dx = g / (2 y)."""

    @staticmethod
    def forward(ctx, x):
        out = np.sqrt(floating(x))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad / (2 * out)


class Tanh(Function):
    """y = tanh(x);  dL/dx = g * (1 - y²)."""

    @staticmethod
    def forward(ctx, x):
        out = np.tanh(floating(x))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad * (1 - out * out)


def stable_sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow: exp is only taken of -|x| <= 0."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


class Sigmoid(Function):
    """y = 1 / (1 + exp(-x));  dL/dx = g * y * (1 - y).  Stable for |x| up to float max."""

    @staticmethod
    def forward(ctx, x):
        out = stable_sigmoid(floating(x))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad * out * (1 - out)


class ReLU(Function):
    """y = max(x, 0);  dL/dx = g * [x > 0]  (0 at the kink, as PyTorch)."""

    @staticmethod
    def forward(ctx, x):
        out = np.maximum(x, 0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad * (out > 0)


class Abs(Function):
    """y = |x|;  dL/dx = g * sign(x)  (0 at x = 0, as PyTorch)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.abs(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * np.sign(x)


class Clip(Function):
    """y = min(max(x, min), max);  dL/dx = g * [min <= x <= max]  (bounds inclusive, as torch.clamp).
    An integer tensor with a non-integer bound is clamped in float32, as in PyTorch."""

    @staticmethod
    def forward(ctx, x, *, min=None, max=None):
        if x.dtype.kind in "iub" and not all(
            bound is None or isinstance(bound, numbers.Integral) for bound in (min, max)
        ):
            x = floating(x)
        if min is not None and max is not None:
            inside = (x >= min) & (x <= max)
        else:
            inside = x >= min if min is not None else x <= max
        ctx.save_for_backward(inside)
        return np.clip(x, min, max).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved
        return grad * inside


class Cast(Function):
    """y = x converted to `dtype`;  dL/dx = g converted back to x's dtype (by the engine)."""

    @staticmethod
    def forward(ctx, x, *, dtype):
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad


class Clone(Function):
    """y = a copy of x (its own memory);  dL/dx = g."""

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, grad):
        return grad
