"""pixel_shuffle: PyTorch's F.pixel_shuffle (sub-pixel convolution's rearrangement), one Function."""

from __future__ import annotations

import numpy as np

from kinone.autograd import Function, Tensor


class PixelShuffle(Function):
    """y = x rearranged, y[..., c, h·r + i, w·r + j] = x[..., c·r² + i·r + j, h, w] for an upscale factor r:
    (*, C·r², H, W) -> (*, C, H·r, W·r), a reshape, a transpose and a reshape (ONNX's
    DepthToSpace in CRD order);  dL/dx[..., c·r² + i·r + j, h, w] = g[..., c, h·r + i, w·r + j],
    the inverse rearrangement of g.

    Attribute (given by pixel_shuffle): upscale_factor r.
    """

    @staticmethod
    def forward(ctx, x, *, upscale_factor):
        r = upscale_factor
        *lead, channels, height, width = x.shape
        blocks = x.reshape(*lead, channels // (r * r), r, r, height, width)
        k = len(lead)
        order = (*range(k), k, k + 3, k + 1, k + 4, k + 2)  # (*, C, H, r, W, r)
        return blocks.transpose(order).reshape(*lead, channels // (r * r), height * r, width * r)

    @staticmethod
    def backward(ctx, grad):
        r = ctx.attrs["upscale_factor"]
        *lead, channels, height, width = ctx.input_shapes[0]
        k = len(lead)
        blocks = grad.reshape(*lead, channels // (r * r), height, r, width, r)
        order = (*range(k), k, k + 2, k + 4, k + 1, k + 3)  # (*, C, r, r, H, W)
        return blocks.transpose(order).reshape(ctx.input_shapes[0])


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
    """Rearrange input (*, C·r², H, W) into (*, C, H·r, W·r), r = upscale_factor, as PyTorch."""
    if isinstance(upscale_factor, bool) or not isinstance(upscale_factor, (int, np.integer)):
        raise TypeError(f"pixel_shuffle: upscale_factor must be an int, got {upscale_factor!r}")
    if upscale_factor <= 0:
        raise ValueError(f"pixel_shuffle expects a positive upscale_factor, but got {upscale_factor}")
    if input.ndim < 3:
        raise ValueError(
            f"pixel_shuffle expects input to have at least 3 dimensions, but got input with {input.ndim} dimension(s)"
        )
    channels = input.shape[-3]
    if channels % (upscale_factor * upscale_factor):
        raise ValueError(
            "pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of upscale_factor, "
            f"but input.size(-3)={channels} is not divisible by {upscale_factor * upscale_factor}"
        )
    return PixelShuffle.apply(input, upscale_factor=int(upscale_factor))
