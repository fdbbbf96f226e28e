"""2-D pooling over (N, C, H, W) inputs: max, average and adaptive average, with PyTorch's
output sizes, padding rules, ceil_mode and divisors.

Max and average pooling loop over the kh·kw kernel offsets: each offset is one strided view
of the input (held as its stride phases, `StridePhases` in stride_phases.py, so that views
have unit-stride rows), and a step is one vectorised op over all windows at once (no
np.add.at, no loop over pixels). Adaptive average pooling is a product with two small
averaging matrices, with fast paths for evenly dividing sizes and for global pooling.

Devices: the math is written once for NumPy and CuPy (`xp = get_array_module(x)` where arrays
are created; host-built constants, the averaging matrices and divisors, are moved to the
input's device). Gradients are strided slice adds, one per kernel offset: deterministic on the
GPU too (no scatter with atomics).
"""

from __future__ import annotations

import numpy as np

from kinone.autograd import Function, Tensor
from kinone.autograd.backend import as_array, get_array_module

from .arguments import pair
from .stride_phases import StridePhases


class MaxPool2d(Function):
    """y = max_{i,j} x_pad[n, c, s·h + d·i, s·w + d·j] at each output (n, c, h, w), padding -inf;
    dL/dx = g routed to the first maximum of each window (in window order, as PyTorch),
    summed where windows overlap.

    Attributes: kernel_size, stride, padding, dilation as (height, width) pairs; ceil_mode.
    """

    @staticmethod
    def forward(ctx, x, *, kernel_size, stride, padding, dilation, ceil_mode):
        output_size = _check_pool_input("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)
        out = get_array_module(x).full((*x.shape[:2], *output_size), -np.inf, dtype=x.dtype)
        x_phases = StridePhases.split(x, stride)
        ctx.parts = _window_parts(x.shape[2:], kernel_size, stride, padding, dilation, output_size)
        for out_part, x_part in ctx.parts:
            np.maximum(out[out_part], x_phases.view(x_part), out=out[out_part])
        # Saved: x and y, not argmax indices. Backward finds each window's first maximum by
        # equality with y; on (16, 64, 32x32), 3x3 stride 2 float32, forward + backward took
        # 6.2 ms this way against 8.3 ms with uint8 indices built in the forward (np.where per
        # offset) and 15 ms with indices tracked by masked copies.
        # The phases rather than x: backward reads the same views (for stride 1 they are x).
        ctx.save_for_backward(x_phases.phases, out)
        ctx.input_shape = x.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        phases, out = ctx.saved
        shape, stride, parts = ctx.input_shape, ctx.attrs["stride"], ctx.parts
        x = StridePhases(phases, shape, stride)
        xp = get_array_module(grad)
        grad_x = StridePhases.zeros(shape, stride, grad.dtype, xp)
        taken = xp.zeros(out.shape, dtype=bool)
        is_max = xp.empty(out.shape, dtype=bool)
        routed = xp.empty(out.shape, dtype=grad.dtype)
        for out_part, x_part in parts:
            hit, claimed, share = is_max[out_part], taken[out_part], routed[out_part]
            np.equal(x.view(x_part), out[out_part], out=hit)
            np.greater(hit, claimed, out=hit)  # a maximum not already claimed by an earlier offset
            claimed |= hit
            np.multiply(grad[out_part], hit, out=share)
            grad_x.view(x_part)[...] += share
        # On a CUDA device the NaN pass always runs (it routes nothing when every window was
        # claimed): reading taken.all() back would make the host wait for the GPU.
        if xp is not np or not taken.all():
            # Only windows whose maximum is NaN are left (NaN equals nothing): PyTorch's kernel
            # takes every NaN it meets, so the gradient goes to the window's last NaN.
            for out_part, x_part in reversed(parts):
                hit, claimed, share = is_max[out_part], taken[out_part], routed[out_part]
                np.isnan(x.view(x_part), out=hit)
                np.greater(hit, claimed, out=hit)
                claimed |= hit
                np.multiply(grad[out_part], hit, out=share)
                grad_x.view(x_part)[...] += share
        return grad_x.merge()


class AvgPool2d(Function):
    """y = Σ_{i,j} x_pad[n, c, s·h + i, s·w + j] / D[h, w] at each output (n, c, h, w), padding 0,
    D the window's size (or the count of its elements inside the input, count_include_pad=False);
    dL/dx = Σ of g / D over the windows that contain x.

    Attributes: kernel_size, stride, padding as (height, width) pairs; ceil_mode,
    count_include_pad, divisor_override (None or an int that replaces D).
    """

    @staticmethod
    def forward(ctx, x, *, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
        output_size = _check_pool_input("avg_pool2d", x, kernel_size, stride, padding, (1, 1), ceil_mode)
        out = get_array_module(x).zeros((*x.shape[:2], *output_size), dtype=x.dtype)
        x_phases = StridePhases.split(x, stride)
        ctx.parts = _window_parts(x.shape[2:], kernel_size, stride, padding, (1, 1), output_size)
        for out_part, x_part in ctx.parts:
            out[out_part] += x_phases.view(x_part)
        divisor = _avg_divisor(
            x.shape[2:], kernel_size, stride, padding, output_size, count_include_pad, divisor_override
        )
        if isinstance(divisor, int):
            out /= x.dtype.type(divisor)
        else:  # a divisor per output, built on the host: moved to x's device once
            divisor = as_array(divisor.astype(x.dtype), like=x)
            out /= divisor
        ctx.divisor, ctx.input_shape = divisor, x.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        divisor, input_shape = ctx.divisor, ctx.input_shape
        if isinstance(divisor, int):
            scaled = grad / grad.dtype.type(divisor)
        else:
            scaled = grad / divisor.astype(grad.dtype, copy=False)
        grad_x = StridePhases.zeros(input_shape, ctx.attrs["stride"], grad.dtype, get_array_module(grad))
        for out_part, x_part in ctx.parts:
            grad_x.view(x_part)[...] += scaled[out_part]
        return grad_x.merge()


class AdaptiveAvgPool2d(Function):
    """y = A_h · x · A_wᵀ over (H, W), where row i of A_h averages x's rows
    floor(i·H/OH) … ceil((i+1)·H/OH) - 1 (likewise A_w);  dL/dx = A_hᵀ · g · A_w.

    Attribute: output_size, an (OH, OW) pair.
    """

    @staticmethod
    def forward(ctx, x, *, output_size):
        if x.ndim != 4:
            raise ValueError(
                f"adaptive_avg_pool2d: expected input of shape (N, C, H, W), got shape {x.shape} ({x.ndim}-D)"
            )
        if x.dtype.kind != "f":
            raise TypeError(f"adaptive_avg_pool2d: input must be a floating-point array, got dtype {x.dtype}")
        n, channels, height, width = x.shape
        if height == 0 or width == 0:
            raise ValueError(f"adaptive_avg_pool2d: input of shape {x.shape} has an empty spatial dim")
        out_h, out_w = output_size
        ctx.input_shape = x.shape
        if out_h == 1 and out_w == 1:
            ctx.mode = "global"
            return x.mean(axis=(2, 3), keepdims=True)
        if height % out_h == 0 and width % out_w == 0:
            # Equal windows that tile the input: a reshape and one mean, no matrices.
            ctx.mode = "tiled"
            return x.reshape(n, channels, out_h, height // out_h, out_w, width // out_w).mean(axis=(3, 5))
        ctx.mode = "matrices"
        rows = as_array(averaging_matrix(height, out_h, x.dtype), like=x)
        cols = as_array(averaging_matrix(width, out_w, x.dtype), like=x)
        ctx.save_for_backward(rows, cols)
        # Width first, as one (N·C·H, W) x (W, OW) GEMM, then height.
        y = (x.reshape(-1, width) @ cols.T).reshape(n, channels, height, out_w)
        return np.matmul(rows, y)

    @staticmethod
    def backward(ctx, grad):
        n, channels, height, width = ctx.input_shape
        out_h, out_w = grad.shape[2:]
        if ctx.mode == "global":
            grad_x = get_array_module(grad).empty(ctx.input_shape, dtype=grad.dtype)
            grad_x[...] = grad / grad.dtype.type(height * width)
            return grad_x
        if ctx.mode == "tiled":
            kh, kw = height // out_h, width // out_w
            scaled = (grad / grad.dtype.type(kh * kw))[:, :, :, None, :, None]
            return np.broadcast_to(scaled, (n, channels, out_h, kh, out_w, kw)).reshape(ctx.input_shape)
        rows, cols = ctx.saved
        grad = get_array_module(grad).ascontiguousarray(grad)
        g = (grad.reshape(-1, out_w) @ cols).reshape(n, channels, out_h, width)
        return np.matmul(rows.T, g)


# ------------------------------------------------------------------------------------ public


def max_pool2d(x: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False, *, dilation=1) -> Tensor:
    """Max over kernel_size windows of x (N, C, H, W); stride defaults to kernel_size.

    Padding is -inf and at most half the kernel; with ceil_mode the output size rounds up,
    but the last window must start inside the input or its left padding (PyTorch's rules).
    """
    kernel_size = pair(kernel_size, "kernel_size", "max_pool2d")
    stride = (
        kernel_size
        if stride is None or (isinstance(stride, (tuple, list)) and not stride)
        else pair(stride, "stride", "max_pool2d")
    )
    padding, dilation = pair(padding, "padding", "max_pool2d"), pair(dilation, "dilation", "max_pool2d")
    _check_pool_args("max_pool2d", kernel_size, stride, padding, dilation)
    return MaxPool2d.apply(
        x, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation, ceil_mode=bool(ceil_mode)
    )


def avg_pool2d(
    x: Tensor,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """Mean over kernel_size windows of x (N, C, H, W); stride defaults to kernel_size.

    The divisor is the window's size clipped to the padded input (count_include_pad=True),
    the number of its elements inside the input (False), or divisor_override; as PyTorch.
    """
    kernel_size = pair(kernel_size, "kernel_size", "avg_pool2d")
    stride = (
        kernel_size
        if stride is None or (isinstance(stride, (tuple, list)) and not stride)
        else pair(stride, "stride", "avg_pool2d")
    )
    padding = pair(padding, "padding", "avg_pool2d")
    _check_pool_args("avg_pool2d", kernel_size, stride, padding, (1, 1))
    if divisor_override is not None and (
        isinstance(divisor_override, bool)
        or not isinstance(divisor_override, (int, np.integer))
        or divisor_override <= 0
    ):
        raise ValueError(f"avg_pool2d: divisor_override must be a positive int or None, got {divisor_override!r}")
    return AvgPool2d.apply(
        x,
        kernel_size=kernel_size,
        stride=stride,
        padding=padding,
        ceil_mode=bool(ceil_mode),
        count_include_pad=bool(count_include_pad),
        divisor_override=None if divisor_override is None else int(divisor_override),
    )


def adaptive_avg_pool2d(x: Tensor, output_size) -> Tensor:
    """Average pooling of x (N, C, H, W) to output_size (an int or a pair; None keeps that
    input dim), with PyTorch's windows floor(i·H/OH) … ceil((i+1)·H/OH)."""
    if isinstance(output_size, (int, np.integer)) and not isinstance(output_size, bool):
        output_size = (output_size, output_size)
    if not isinstance(output_size, (tuple, list)) or len(output_size) != 2:
        raise TypeError(
            f"adaptive_avg_pool2d: output_size must be an int or a pair (None keeps a dim), got {output_size!r}"
        )
    if x.ndim != 4:
        raise ValueError(
            f"adaptive_avg_pool2d: expected input of shape (N, C, H, W), got shape {tuple(x.shape)} ({x.ndim}-D)"
        )
    size = []
    for given, current in zip(output_size, x.shape[2:], strict=True):
        if given is None:
            given = current
        if isinstance(given, bool) or not isinstance(given, (int, np.integer)) or given <= 0:
            raise ValueError(
                f"adaptive_avg_pool2d: output_size entries must be positive ints or None, got {tuple(output_size)!r}"
            )
        size.append(int(given))
    return AdaptiveAvgPool2d.apply(x, output_size=tuple(size))


# ------------------------------------------------------------------------------------ helpers


def _check_pool_args(op, kernel_size, stride, padding, dilation) -> None:
    if min(kernel_size) <= 0:
        raise ValueError(f"{op}: kernel_size must be positive, got {kernel_size}")
    if min(stride) <= 0:
        raise ValueError(f"{op}: stride must be positive, got {stride}")
    if min(dilation) <= 0:
        raise ValueError(f"{op}: dilation must be positive, got {dilation}")
    if min(padding) < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {padding}")
    if padding[0] > kernel_size[0] // 2 or padding[1] > kernel_size[1] // 2:
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel size {kernel_size}")


def _check_pool_input(op, x, kernel_size, stride, padding, dilation, ceil_mode) -> tuple[int, int]:
    """Validate x; return the output size (OH, OW)."""
    if x.ndim != 4:
        raise ValueError(f"{op}: expected input of shape (N, C, H, W), got shape {x.shape} ({x.ndim}-D)")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: input must be a floating-point array, got dtype {x.dtype}")
    size = tuple(
        _pool_output_length(length, k, s, p, d, ceil_mode)
        for length, k, s, p, d in zip(x.shape[2:], kernel_size, stride, padding, dilation, strict=True)
    )
    if min(size) < 1:
        raise ValueError(
            f"{op}: input of shape {x.shape} is too small for kernel {kernel_size} (stride {stride}, "
            f"padding {padding}, dilation {dilation}): the output would be {size}"
        )
    return size


def _pool_output_length(length, kernel, stride, padding, dilation, ceil_mode) -> int:
    """PyTorch's pooling_output_shape: floor or ceil of the window count; with ceil_mode
    the last window must start inside the input or its left padding."""
    span = length + 2 * padding - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= length + padding:
        out -= 1
    return out


def _window_parts(size, kernel_size, stride, padding, dilation, output_size) -> list[tuple]:
    """For each kernel offset (i, j), in window order: (the outputs whose window element at
    that offset lies inside the input, those input elements), as index tuples of strided
    slices over (N, C, H, W) arrays.

    Each offset is one vectorised op over all its windows at once, and elements in the padding
    or past the input (ceil_mode) are simply not visited: no padded copy of the input, no
    cropped copy of its gradient, and windows clipped to the input as in PyTorch's kernel.
    """
    rows = [_axis_part(size[0], i * dilation[0] - padding[0], stride[0], output_size[0]) for i in range(kernel_size[0])]
    cols = [_axis_part(size[1], j * dilation[1] - padding[1], stride[1], output_size[1]) for j in range(kernel_size[1])]
    parts = []
    for row in rows:
        for col in cols:
            if row is not None and col is not None:
                everything = slice(None)
                parts.append(((everything, everything, row[0], col[0]), (everything, everything, row[1], col[1])))
    return parts


def _axis_part(length, offset, stride, out_length):
    """Along one axis: the outputs o with 0 <= o·stride + offset < length, and the input
    positions they read, as a pair of slices (None when there are none)."""
    first = max(0, -(offset // stride))  # ceil(-offset / stride), at least 0
    last = min(out_length, -((offset - length) // stride))  # ceil((length - offset) / stride)
    if first >= last:
        return None
    return slice(first, last), slice(first * stride + offset, (last - 1) * stride + offset + 1, stride)


def _avg_divisor(size, kernel_size, stride, padding, output_size, count_include_pad, divisor_override):
    """The divisor of each output (a scalar when it is the same for all): PyTorch counts the
    window clipped to the padded input, or (count_include_pad=False) to the input itself."""
    if divisor_override is not None:
        return divisor_override
    counts = []
    for length, k, s, p, out in zip(size, kernel_size, stride, padding, output_size, strict=True):
        start = np.arange(out) * s - p
        end = np.minimum(start + k, length + p)
        if count_include_pad:
            counts.append(end - start)
        else:
            counts.append(np.minimum(end, length) - np.maximum(start, 0))
    divisor = counts[0][:, None] * counts[1][None, :]
    if (divisor == divisor.flat[0]).all():
        return int(divisor.flat[0])
    return divisor


def averaging_matrix(length: int, out: int, dtype) -> np.ndarray:
    """(out, length) matrix whose row i averages elements floor(i·L/out) … ceil((i+1)·L/out) - 1."""
    index = np.arange(out)
    start, end = (index * length) // out, -((-(index + 1) * length) // out)
    position = np.arange(length)
    inside = (position >= start[:, None]) & (position < end[:, None])
    return (inside / (end - start)[:, None]).astype(dtype)
