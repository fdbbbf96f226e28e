"""Softmax and log-softmax along one dim, each one Function with a fused backward."""

from __future__ import annotations

import numpy as np

from ..function import Function
from .promotion import require_floating
from .reduction import normalize_dims


class Softmax(Function):
    """y = exp(x - max) / Σ exp(x - max) along `dim`;  dL/dx = y * (g - Σ_dim g * y)."""

    @staticmethod
    def forward(ctx, x, *, dim):
        require_floating("softmax", x)
        (axis,) = normalize_dims("softmax", dim, x.ndim) or (None,)
        exp = np.exp(x - np.amax(x, axis=axis, keepdims=True))
        out = exp / np.sum(exp, axis=axis, keepdims=True)
        ctx.axis = axis
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        return out * (grad - np.sum(grad * out, axis=ctx.axis, keepdims=True))


class LogSoftmax(Function):
    """y = x - logsumexp(x) along `dim` (max-shifted, stable for |x| ~ 1e4);
    dL/dx = g - exp(y) * Σ_dim g."""

    @staticmethod
    def forward(ctx, x, *, dim):
        require_floating("log_softmax", x)
        (axis,) = normalize_dims("log_softmax", dim, x.ndim) or (None,)
        shifted = x - np.amax(x, axis=axis, keepdims=True)
        out = shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
        ctx.axis = axis
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad - np.exp(out) * np.sum(grad, axis=ctx.axis, keepdims=True)
