"""Binary arithmetic with NumPy broadcasting. Gradients are returned at the broadcast
output's shape; the engine reduces them to each input's shape."""

from __future__ import annotations

import numpy as np

from ..function import Function
from .promotion import promote, true_division_operands


def _check_broadcast(op: str, a: np.ndarray, b: np.ndarray) -> None:
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together") from None


class Add(Function):
    """y = a + b;  dL/da = g,  dL/db = g."""

    @staticmethod
    def forward(ctx, a, b):
        if a.dtype is not b.dtype:  # integers meeting floats take the float dtype
            a, b = promote(a, b)
        try:
            return a + b
        except ValueError:
            _check_broadcast("add", a, b)
            raise

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


class Sub(Function):
    """y = a - b;  dL/da = g,  dL/db = -g."""

    @staticmethod
    def forward(ctx, a, b):
        if a.dtype is not b.dtype:  # integers meeting floats take the float dtype
            a, b = promote(a, b)
        try:
            return a - b
        except ValueError:
            _check_broadcast("sub", a, b)
            raise

    @staticmethod
    def backward(ctx, grad):
        return grad, (-grad if ctx.needs_input_grad[1] else None)


class Mul(Function):
    """y = a * b;  dL/da = g * b,  dL/db = g * a."""

    @staticmethod
    def forward(ctx, a, b):
        if a.dtype is not b.dtype:  # integers meeting floats take the float dtype
            a, b = promote(a, b)
        ctx.save_for_backward(a if ctx.needs_input_grad[1] else None, b if ctx.needs_input_grad[0] else None)
        try:
            return a * b
        except ValueError:
            _check_broadcast("mul", a, b)
            raise

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        return (grad * b if b is not None else None), (grad * a if a is not None else None)


class Div(Function):
    """y = a / b;  dL/da = g / b,  dL/db = -g * a / b**2 = -g * y / b.  True division: integers
    divide in float32, as in PyTorch."""

    @staticmethod
    def forward(ctx, a, b):
        if a.dtype.kind not in "fc" or b.dtype.kind not in "fc":
            a, b = true_division_operands(a, b)
        try:
            out = a / b
        except ValueError:
            _check_broadcast("div", a, b)
            raise
        ctx.save_for_backward(b, out if ctx.needs_input_grad[1] else None)
        return out

    @staticmethod
    def backward(ctx, grad):
        b, out = ctx.saved
        grad_a = grad / b if ctx.needs_input_grad[0] else None
        grad_b = -grad * out / b if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


class Neg(Function):
    """y = -x;  dL/dx = -g."""

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Pow(Function):
    """y = a ** b;  dL/da = g * b * a**(b-1),  dL/db = g * y * log(a)  (0 where a == 0 and b >= 0,
    as PyTorch: the limit of the term as a -> 0+).

    `x ** 2` passes the exponent as a constant tensor, so only dL/da is computed.
    """

    @staticmethod
    def forward(ctx, a, b):
        if a.dtype is not b.dtype:  # integers meeting floats take the float dtype
            a, b = promote(a, b)
        if a.dtype.kind in "iu" and b.dtype.kind in "iu" and np.any(b < 0):
            raise ValueError(
                f"pow: integers to negative integer powers are not allowed (as in PyTorch); got an exponent "
                f"of dtype {b.dtype} below 0 with a base of dtype {a.dtype}; use a floating base"
            )
        try:
            with np.errstate(divide="ignore"):  # 0 ** negative is inf, silently, as in PyTorch
                out = a**b
        except ValueError:
            _check_broadcast("pow", a, b)
            raise
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b, out = ctx.saved
        grad_a = grad_b = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if ctx.needs_input_grad[0]:
                if b.ndim == 0 and b == 2:  # the common x ** 2
                    grad_a = grad * (2 * a)
                else:  # b = 0 has derivative 0 even at a = 0, where a ** -1 is inf
                    grad_a = grad * np.where(b == 0, 0, b * a ** (b - 1))
            if ctx.needs_input_grad[1]:
                grad_b = grad * np.where((a == 0) & (b >= 0), 0, out * np.log(a))
        return grad_a, grad_b
