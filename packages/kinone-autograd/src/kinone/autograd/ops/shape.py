"""Shape operations. Forward returns NumPy views where NumPy can (no copy)."""

from __future__ import annotations

import numpy as np

from ..function import Function


class Reshape(Function):
    """y = x viewed with a new `shape` (one entry may be -1);  dL/dx = g reshaped to x's shape.

    Also serves `view`, `flatten`, `squeeze` and `unsqueeze`.
    """

    @staticmethod
    def forward(ctx, x, *, shape):
        ctx.input_shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) into {shape}") from None

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.input_shape)


class Permute(Function):
    """y = x with its dims reordered to `dims`;  dL/dx = g permuted by the inverse order.

    Also serves `transpose` and `.T`.
    """

    @staticmethod
    def forward(ctx, x, *, dims):
        if len(dims) != x.ndim:
            raise ValueError(f"permute: {len(dims)} dims given for a tensor of shape {x.shape}")
        ctx.inverse = tuple(np.argsort(dims))
        return x.transpose(dims)

    @staticmethod
    def backward(ctx, grad):
        return grad.transpose(ctx.inverse)


class Expand(Function):
    """y = x broadcast to `shape` (a read-only view, no copy);  dL/dx = g summed over the
    broadcast dims (done by the engine's unbroadcast)."""

    @staticmethod
    def forward(ctx, x, *, shape):
        try:
            return np.broadcast_to(x, shape)
        except ValueError:
            raise ValueError(f"expand: a tensor of shape {x.shape} cannot be expanded to {shape}") from None

    @staticmethod
    def backward(ctx, grad):
        return grad
