"""More elementwise functions: trigonometric and hyperbolic, reciprocal and rsqrt, and the
step functions (sign, floor, ceil, round, trunc), whose gradient is zero, as in PyTorch.

Integer inputs: the smooth functions compute in float32 (as `exp`, see promotion.py); the
step functions keep integers as they are (as PyTorch: `tensor([1, 2]).floor()` is int64).
"""

from __future__ import annotations

import numpy as np

from ..function import Function
from .promotion import floating


class Sin(Function):
    """y = sin(x);  dL/dx = g * cos(x)."""

    @staticmethod
    def forward(ctx, x):
        x = floating(x)
        ctx.save_for_backward(x)
        return np.sin(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * np.cos(x)


class Cos(Function):
    """y = cos(x);  dL/dx = -g * sin(x)."""

    @staticmethod
    def forward(ctx, x):
        x = floating(x)
        ctx.save_for_backward(x)
        return np.cos(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * -np.sin(x)


class Tan(Function):
    """y = tan(x);  dL/dx = g * (1 + tan²(x))."""

    @staticmethod
    def forward(ctx, x):
        x = floating(x)
        ctx.save_for_backward(x)
        return np.tan(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * (1 + np.tan(x) ** 2)


class Asin(Function):
    """y = asin(x);  dL/dx = g / sqrt(1 - x²)."""

    @staticmethod
    def forward(ctx, x):
        x = floating(x)
        ctx.save_for_backward(x)
        return np.arcsin(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * np.reciprocal(np.sqrt(1 - x * x))


class Acos(Function):
    """y = acos(x);  dL/dx = -g / sqrt(1 - x²)."""

    @staticmethod
    def forward(ctx, x):
        x = floating(x)
        ctx.save_for_backward(x)
        return np.arccos(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * -np.reciprocal(np.sqrt(1 - x * x))


class Atan(Function):
    """y = atan(x);  dL/dx = g / (1 + x²)."""

    @staticmethod
    def forward(ctx, x):
        x = floating(x)
        ctx.save_for_backward(x)
        return np.arctan(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * np.reciprocal(1 + x * x)


class Sinh(Function):
    """y = sinh(x);  dL/dx = g * cosh(x)."""

    @staticmethod
    def forward(ctx, x):
        x = floating(x)
        ctx.save_for_backward(x)
        return np.sinh(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * np.cosh(x)


class Cosh(Function):
    """y = cosh(x);  dL/dx = g * sinh(x)."""

    @staticmethod
    def forward(ctx, x):
        x = floating(x)
        ctx.save_for_backward(x)
        return np.cosh(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * np.sinh(x)


class Reciprocal(Function):
    """y = 1 / x;  dL/dx = -g * y²."""

    @staticmethod
    def forward(ctx, x):
        x = floating(x)
        with np.errstate(divide="ignore"):  # 1/0 is inf, as in PyTorch
            out = np.reciprocal(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        return -grad * out * out


class Rsqrt(Function):
    """y = 1 / sqrt(x);  dL/dx = -½ g * y³."""

    @staticmethod
    def forward(ctx, x):
        x = floating(x)
        with np.errstate(divide="ignore", invalid="ignore"):  # inf at 0, NaN below, as in PyTorch
            out = np.reciprocal(np.sqrt(x))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad * (out * out * out) * out.dtype.type(-0.5)


class _Step(Function):
    """A piecewise-constant function: its gradient is zero wherever it is defined, and PyTorch
    returns zero everywhere."""

    @staticmethod
    def backward(ctx, grad):
        return np.zeros_like(grad)


class Sign(_Step):
    """y = sign(x) (-1, 0 or 1);  dL/dx = 0."""

    @staticmethod
    def forward(ctx, x):
        return np.sign(x) if x.dtype != np.bool_ else x.copy()


class Floor(_Step):
    """y = ⌊x⌋;  dL/dx = 0.  Integers are returned as they are (a copy)."""

    @staticmethod
    def forward(ctx, x):
        return np.floor(x) if x.dtype.kind in "fc" else x.copy()


class Ceil(_Step):
    """y = ⌈x⌉;  dL/dx = 0.  Integers are returned as they are (a copy)."""

    @staticmethod
    def forward(ctx, x):
        return np.ceil(x) if x.dtype.kind in "fc" else x.copy()


class Trunc(_Step):
    """y = x rounded toward zero;  dL/dx = 0.  Integers are returned as they are (a copy)."""

    @staticmethod
    def forward(ctx, x):
        return np.trunc(x) if x.dtype.kind in "fc" else x.copy()


class Round(_Step):
    """y = x rounded to `decimals` places, halves to even (as torch.round);  dL/dx = 0."""

    @staticmethod
    def forward(ctx, x, *, decimals=0):
        if x.dtype.kind not in "fc":
            return x.copy()
        if decimals == 0:
            return np.round(x)
        scale = x.dtype.type(10.0**decimals)
        return np.round(x * scale) / scale


# The functional forms (`sin(x)`, as torch.sin); Tensor binds them as methods (`x.sin()`).
def sin(input):
    return Sin.apply(input)


def cos(input):
    return Cos.apply(input)


def tan(input):
    return Tan.apply(input)


def asin(input):
    return Asin.apply(input)


def acos(input):
    return Acos.apply(input)


def atan(input):
    return Atan.apply(input)


def sinh(input):
    return Sinh.apply(input)


def cosh(input):
    return Cosh.apply(input)


def reciprocal(input):
    return Reciprocal.apply(input)


def rsqrt(input):
    return Rsqrt.apply(input)


def sign(input):
    return Sign.apply(input)


def floor(input):
    return Floor.apply(input)


def ceil(input):
    return Ceil.apply(input)


def trunc(input):
    return Trunc.apply(input)


def round(input, *, decimals: int = 0):
    """Round halves to even (as torch.round); `decimals` places after the point."""
    return Round.apply(input, decimals=int(decimals))
