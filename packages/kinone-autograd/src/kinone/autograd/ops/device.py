"""Moving a tensor between devices, differentiably (as PyTorch's `.to(device)`)."""

from __future__ import annotations

from .. import backend
from ..function import Function


class ToDevice(Function):
    """y = x, copied onto `device`;  dL/dx = dL/dy, copied back onto x's device."""

    @staticmethod
    def forward(ctx, x, *, device):
        ctx.source = backend.device_of(x)
        out = backend.to_device(x, device)
        return out.copy() if out is x else out  # never the input's own array

    @staticmethod
    def backward(ctx, grad):
        return backend.to_device(grad, ctx.source)
