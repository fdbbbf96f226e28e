"""The window machinery of convolution: im2col, its adjoint col2im (with the CuPy gather
kernel), the per-thread workspace the columns live in, and the padding and strided views they
are built from. Conv2d, ConvTranspose2d and the tour read them here; every function is a
strided view, a copy or a strided add, so results are deterministic on the GPU too.

Layout: the columns of an (N, C, H, W) input for a kh x kw kernel are (N, C·kh·kw, OH·OW), row
c·kh·kw + i·kw + j holding x_pad[n, c, s·h + d·i, s·w + d·j] for every output position (h, w).
"""

from __future__ import annotations

import threading

import numpy as np

from kinone.autograd.backend import get_array_module


def im2col(x_padded, kernel_size, stride, dilation, output_size, buffer=None):
    """The kh·kw windows of a padded (N, C, Hp, Wp) array as columns (N, C·kh·kw, OH·OW).

    Row c·kh·kw + i·kw + j of image n holds x_padded[n, c, s·h + d·i, s·w + d·j] for every
    output position (h, w). The columns are written into `buffer` (a flat array at least that
    large) when one is given.

    One `copyto` from a strided view of all windows: on (16, 64, 34x34) float32 with a 3x3
    kernel it took 1.9 ms into a warm buffer (6.1 ms into a fresh one) against 4.5 ms
    (9.0 ms) for nine slice copies, one per kernel offset.
    """
    n, channels = x_padded.shape[:2]
    (kh, kw), (out_h, out_w) = kernel_size, output_size
    s_n, s_c, s_h, s_w = x_padded.strides
    windows = strided_view(
        x_padded,
        (n, channels, kh, kw, out_h, out_w),
        (s_n, s_c, dilation[0] * s_h, dilation[1] * s_w, stride[0] * s_h, stride[1] * s_w),
    )
    if buffer is None:
        cols = get_array_module(x_padded).empty(windows.shape, dtype=x_padded.dtype)
    else:
        cols = buffer[: windows.size].reshape(windows.shape)
    np.copyto(cols, windows)
    return cols.reshape(n, channels * kh * kw, out_h * out_w)


def col2im(cols, input_shape, stride, padding, dilation):
    """The adjoint of im2col: add columns (N, C, kh, kw, OH, OW) back onto an (N, C, H, W)
    array, one strided `+=` per kernel offset (no np.add.at: 3x slower, and on a GPU a
    scatter with atomics, whose float sums vary from run to run; each `+=` here is a plain
    elementwise kernel, deterministic)."""
    n, channels, kh, kw, out_h, out_w = cols.shape
    height, width = input_shape[2:]
    xp = get_array_module(cols)
    if xp is not np and xp.__name__ == "cupy":  # real CuPy only: the stand-in runs the loop below
        return _col2im_cupy(xp, cols, input_shape, stride, padding, dilation)
    padded = xp.zeros((n, channels, height + 2 * padding[0], width + 2 * padding[1]), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            offset_view(padded, i * dilation[0], j * dilation[1], stride, (out_h, out_w))[...] += cols[:, :, i, j]
    return crop(padded, padding, (height, width))


# Chainer's col2im_gpu as one CuPy ElementwiseKernel: each input element (n, c, y, x) gathers
# the column entries of the windows that cover it, in the loop's offset order (i, then j) and
# starting from zero, so its sum is the CPU's, with no atomics. NOT RUN IN CI (the stand-in
# takes the loop); checked on a GPU by benchmarks/gpu/run.sh (tests/nn/test_gpu.py compares the
# Conv2d samples with strides, whose input gradient goes through col2im, with the CPU).
_COL2IM_PARAMS = (
    "raw T col, int32 h, int32 w, int32 out_h, int32 out_w, int32 kh, int32 kw, "
    "int32 sy, int32 sx, int32 ph, int32 pw, int32 dy, int32 dx"
)
_COL2IM_BODY = """
    const ptrdiff_t image_channel = i / ((ptrdiff_t)h * w);
    const int y = (int)(i / w % h);
    const int x = (int)(i % w);
    T total = 0;
    for (int ky = 0; ky < kh; ++ky) {
        int out_y = y + ph - ky * dy;
        if (out_y < 0 || out_y >= out_h * sy || out_y % sy != 0) continue;
        out_y /= sy;
        for (int kx = 0; kx < kw; ++kx) {
            int out_x = x + pw - kx * dx;
            if (out_x < 0 || out_x >= out_w * sx || out_x % sx != 0) continue;
            out_x /= sx;
            const ptrdiff_t row = (image_channel * kh + ky) * kw + kx;
            total = total + col[(row * out_h + out_y) * out_w + out_x];
        }
    }
    img = total;
"""
_col2im_kernel = None


def _col2im_cupy(cupy, cols, input_shape, stride, padding, dilation):
    """col2im on CuPy as one gather kernel (see _COL2IM_BODY); not run in CI."""
    global _col2im_kernel
    if _col2im_kernel is None:
        _col2im_kernel = cupy.ElementwiseKernel(_COL2IM_PARAMS, "T img", _COL2IM_BODY, "kinone_col2im")
    _, _, kh, kw, out_h, out_w = cols.shape
    height, width = input_shape[2:]
    img = cupy.empty((*cols.shape[:2], height, width), dtype=cols.dtype)
    _col2im_kernel(cupy.ascontiguousarray(cols), height, width, out_h, out_w, kh, kw, *stride, *padding, *dilation, img)
    return img


def columns(x, kernel_size, stride, padding, dilation, output_size):
    """im2col of x padded, in this thread's workspace; a 1x1 conv with stride 1 and no padding
    uses x itself (a view)."""
    if is_pointwise(kernel_size, stride, padding):
        return x.reshape(x.shape[0], x.shape[1], -1)
    size = x.shape[0] * x.shape[1] * kernel_size[0] * kernel_size[1] * output_size[0] * output_size[1]
    buffer = workspace.take(size, x.dtype, get_array_module(x))
    return im2col(zero_pad(x, padding), kernel_size, stride, dilation, output_size, buffer)


class _Workspace(threading.local):
    """One reusable buffer per thread for the columns, which live only within one forward or
    one backward call (never saved, never returned).

    A fresh buffer costs its page faults every call, the kernel zeroing each page: on the
    (16, 64->64, 32x32) 3x3 float32 conv the 37 MB of columns took 8.4 ms of kernel time per
    forward (24.3 ms in all) and 11.4 ms per forward + backward (42.9 ms in all). The buffer
    grows to the largest columns used and is kept, unless larger than WORKSPACE_MAX_BYTES.
    """

    buffer = None

    def take(self, size, dtype, xp=np):
        """A flat array of `size` elements of `dtype`, contents undefined. On a CUDA device
        (xp not numpy) a fresh array: CuPy's memory pool already reuses its blocks."""
        dtype = np.dtype(dtype)
        if xp is not np:
            return xp.empty(size, dtype=dtype)
        if size * dtype.itemsize > WORKSPACE_MAX_BYTES:
            return np.empty(size, dtype=dtype)
        if self.buffer is None or self.buffer.dtype != dtype or self.buffer.size < size:
            self.buffer = None  # let the old one go first
            self.buffer = np.empty(size, dtype=dtype)
        return self.buffer[:size]


WORKSPACE_MAX_BYTES = 1 << 30
workspace = _Workspace()


def is_pointwise(kernel_size, stride, padding) -> bool:
    return tuple(kernel_size) == (1, 1) and tuple(stride) == (1, 1) and tuple(padding) == (0, 0)


def offset_view(a, row, col, stride, output_size):
    """a[..., row + s·h, col + s·w] for every output position (h, w): a strided view."""
    out_h, out_w = output_size
    return a[
        ..., row : row + stride[0] * (out_h - 1) + 1 : stride[0], col : col + stride[1] * (out_w - 1) + 1 : stride[1]
    ]


def strided_view(a, shape, strides):
    """A read-only (on the CPU) strided view of `a`: NumPy's or the CUDA module's as_strided
    (CuPy's takes no writeable=)."""
    if type(a) is np.ndarray:
        return np.lib.stride_tricks.as_strided(a, shape=shape, strides=strides, writeable=False)
    return get_array_module(a).lib.stride_tricks.as_strided(a, shape, strides)


def zero_pad(x, padding):
    """x (..., H, W) with `padding` (ph, pw) zeros on both sides of H and W (x itself if none)."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    padded = get_array_module(x).zeros((*x.shape[:-2], x.shape[-2] + 2 * ph, x.shape[-1] + 2 * pw), dtype=x.dtype)
    padded[..., ph : ph + x.shape[-2], pw : pw + x.shape[-1]] = x
    return padded


def crop(padded, padding, size):
    """The (H, W) = size region of `padded` inside its `padding` (ph, pw), contiguous."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return padded
    return get_array_module(padded).ascontiguousarray(padded[..., ph : ph + size[0], pw : pw + size[1]])
