"""2-D convolution (PyTorch's conv2d: a cross-correlation) as one Function.

Two ways to compute it, chosen by the shapes, each with its own fused backward:

- **im2col + GEMM** (every conv that mixes channels): the windows of the padded input are
  copied into columns (N, G, Cg·kh·kw, OH·OW) and multiplied by the weight (G, Og, Cg·kh·kw)
  in one batched `matmul`, whose output lands in NCHW order. A 1x1 conv with stride 1 and no
  padding uses the input itself as its columns. Backward, for stride 1: one im2col of the
  padded gradient (the transposed convolution's columns) and two GEMMs, one against the
  flipped kernel for dL/dx and one against x for dL/dW; for other strides: dL/dW against the
  columns of x, and dL/dx as Wᵀ·g scattered back by col2im.
- **depthwise** (groups == in_channels > 1: one input channel per group, any channel
  multiplier): a loop over the kh·kw kernel offsets of elementwise multiply-adds over a
  flat, stride-phase layout of the input (see `_PhasePlanes`), where every offset is one
  contiguous slice. A GEMM with an inner dimension of kh·kw is mostly overhead.

Only the input and the weight are saved for backward, never the columns, which are kh·kw
times the input: for every conv of a network that would be nine times its input's memory,
held from forward to backward.

Devices: the math is written once for NumPy and CuPy (`xp = get_array_module(x)` where arrays
are created). Every step is a gather, a strided slice add or a GEMM, so results are
deterministic on the GPU too: col2im sums one strided slice per kernel offset, never a
scatter with atomics (`add.at`). On real CuPy (not the stand-in), col2im is one gather kernel
with the same order of additions (`_col2im_cupy`, not run in CI).
"""

from __future__ import annotations

import threading

import numpy as np

from kinone.autograd import Function, Tensor
from kinone.autograd.backend import get_array_module


class Conv2d(Function):
    """y = b[o] + Σ_{c,i,j} W[o, c, i, j] · x_pad[n, c, s·h + d·i, s·w + d·j] at each output (n, o, h, w),
    c over o's group;  dL/dW = Σ_n g · colsᵀ (cols: the im2col windows of x),  dL/db = Σ_{n,h,w} g,
    dL/dx = col2im(Wᵀ · g). For stride 1 both are computed from the windows of g padded by
    d·(k-1) - p: dL/dx is their correlation with the flipped, channel-transposed W and dL/dW
    the flipped correlation of x with them.

    Attributes: stride, padding, dilation as (height, width) pairs; groups an int.
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None, *, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        out_h, out_w = _check_shapes(x, weight, bias, stride, padding, dilation, groups)
        n, channels = x.shape[:2]
        out_channels = weight.shape[0]
        ctx.depthwise = groups == channels and groups > 1
        ctx.output_size = (out_h, out_w)
        # x is needed for the weight gradient, the weight for the input gradient.
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, weight if ctx.needs_input_grad[0] else None)
        if ctx.depthwise:
            out = _depthwise_forward(x, weight, stride, padding, dilation, (out_h, out_w))
        else:
            # Columns (N, G, K, P) with the weight on the left: the product lands in NCHW. On
            # (16, 64->64, 32x32) 3x3 float32 the GEMM took 9.8 ms, against 10.7 ms for one
            # (O, K) x (K, N·P) GEMM (plus a transpose back to NCHW) and 8.8 ms for channels-last
            # rows (N·P, K) x (K, O), whose im2col (from an NHWC copy) took 14.3 ms against 8.7 ms.
            cols = _columns(x, weight.shape[2:], stride, padding, dilation, (out_h, out_w))
            cols = cols.reshape(n, groups, -1, out_h * out_w)
            out = _weight_times_columns(weight.reshape(groups, out_channels // groups, -1), cols)
        out = out.reshape(n, out_channels, out_h, out_w)
        if bias is not None:
            out += bias.reshape(-1, 1, 1)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved
        attrs = ctx.attrs
        stride, padding = attrs.get("stride", (1, 1)), attrs.get("padding", (0, 0))
        dilation, groups = attrs.get("dilation", (1, 1)), attrs.get("groups", 1)
        needs = ctx.needs_input_grad
        # A gradient broadcast from a sum has zero strides; matmul would not hand it to BLAS.
        grad = get_array_module(grad).ascontiguousarray(grad)
        grad_b = grad.sum(axis=(0, 2, 3)) if len(needs) > 2 and needs[2] else None
        if ctx.depthwise:
            grad_x, grad_w = _depthwise_backward(ctx, grad, x, weight, stride, padding, dilation)
        else:
            grad_x, grad_w = _gemm_backward(ctx, grad, x, weight, stride, padding, dilation, groups)
        return (grad_x, grad_w) if len(needs) == 2 else (grad_x, grad_w, grad_b)


def _weight_times_columns(w: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """w · cols[n] for every image: w (G, M, K), cols (N, G, K, P) -> (N, G, M, P).

    With few pixels per image (P <= 64) the N products are skinny GEMMs that each stream the
    whole weight; one (M, K) x (K, N·P) GEMM reads it once (ResNet-18's layer4 at 64x64 input,
    P = 4: 2.8 ms against 6.7 ms per product). Above that the batched product lands in NCHW
    without a transpose and is faster (see Conv2d.forward).
    """
    n, groups, k, p = cols.shape
    if p > 64:
        return np.matmul(w, cols)
    product = np.matmul(w, cols.transpose(1, 2, 0, 3).reshape(groups, k, n * p))  # (G, M, N·P)
    return product.reshape(groups, w.shape[1], n, p).transpose(2, 0, 1, 3)


def _sum_of_products(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σ over images n of a[n] · b[n]ᵀ, for a (N, G, M, P) and b (N, G, K, P): (G, M, K).

    With many pixels per image, one GEMM per (image, group) summed over images is fastest: on
    (16, 64->64, 32x32, 3x3) float32 it took 10 ms, against 41 ms for tensordot (which copies
    both). With few pixels (deep layers: ResNet-18's layer4 is 2x2 at 64x64 input) those GEMMs
    are tiny and their (N, G, M, K) stack is huge (151 MB for 16 x 512 x 4608): one GEMM over
    all N·P columns took 1.9 ms against 27.7 ms there, and 5.3 ms against 2.7 ms at P = 256.
    """
    n, groups, m, p = a.shape
    if p > 64:
        return np.matmul(a, b.swapaxes(-1, -2)).sum(axis=0)
    a_all = a.transpose(1, 2, 0, 3).reshape(groups, m, n * p)
    b_all = b.transpose(1, 2, 0, 3).reshape(groups, b.shape[2], n * p)
    return np.matmul(a_all, b_all.swapaxes(-1, -2))


def _gemm_backward(ctx, grad, x, weight, stride, padding, dilation, groups):
    x_shape, w_shape = ctx.input_shapes[0], ctx.input_shapes[1]
    n, channels, height, width = x_shape
    out_channels, _, kh, kw = w_shape
    out_h, out_w = ctx.output_size
    group_in, group_out = channels // groups, out_channels // groups
    needs_x, needs_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    xp = get_array_module(grad)
    grad_x = grad_w = None
    reach_h, reach_w = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
    if stride == (1, 1) and padding[0] <= reach_h and padding[1] <= reach_w:
        # With stride 1 both gradients come from the windows of g padded by q = d·(k-1) - p
        # (the columns of the transposed convolution): dL/dx is their product with the kernel
        # flipped in space and transposed in channels, and dL/dW the flipped correlation of x
        # with them. One im2col serves both, and no col2im is needed: on (16, 64->64, 32x32)
        # 3x3 float32 the backward took 27.6 ms with the input gradient done this way (against
        # 36.3 ms for Wᵀ·g followed by col2im), and a further ~2 ms less with the weight
        # gradient taken from the same columns instead of an im2col of x.
        q = (reach_h - padding[0], reach_w - padding[1])
        g_cols = _columns(grad, (kh, kw), (1, 1), q, dilation, (height, width))
        g_cols = g_cols.reshape(n, groups, group_out * kh * kw, height * width)
        if needs_x:
            flipped = weight.reshape(groups, group_out, group_in, kh, kw)[..., ::-1, ::-1].swapaxes(1, 2)
            grad_x = _weight_times_columns(xp.ascontiguousarray(flipped).reshape(groups, group_in, -1), g_cols).reshape(x_shape)
        if needs_w:
            x_rows = x.reshape(n, groups, group_in, height * width)
            correlation = _sum_of_products(x_rows, g_cols)  # (G, Cg, Og·kh·kw)
            correlation = correlation.reshape(groups, group_in, group_out, kh, kw)[..., ::-1, ::-1]
            grad_w = correlation.swapaxes(1, 2).reshape(w_shape)
        return grad_x, grad_w
    g = grad.reshape(n, groups, group_out, out_h * out_w)
    if needs_w:
        cols = _columns(x, (kh, kw), stride, padding, dilation, (out_h, out_w))
        cols = cols.reshape(n, groups, -1, out_h * out_w)
        grad_w = _sum_of_products(g, cols).reshape(w_shape)
    if needs_x:
        w_t = xp.ascontiguousarray(weight.reshape(groups, group_out, -1).swapaxes(1, 2))
        size = n * channels * kh * kw * out_h * out_w
        # Wᵀ·g has the shape of the columns of x, which are no longer needed: into the workspace.
        workspace = _workspace.take(size, grad.dtype, xp)
        d_cols = np.matmul(w_t, g, out=workspace.reshape(n, groups, -1, out_h * out_w))
        grad_x = col2im(d_cols.reshape(n, channels, kh, kw, out_h, out_w), x_shape, stride, padding, dilation)
    return grad_x, grad_w


class _PhasePlanes:
    """The geometry of the depthwise path. Each image of an (N, C, H, W) array, zero-padded, is
    split by the stride into its sh·sw phases (rows ≡ a mod sh, columns ≡ b mod sw) of
    Hq x Wq (Hq = ceil(Hp / sh)) and stored flat as (sh·sw, C, P = Hq·Wq); images follow one
    another in blocks of sh·sw·C·P elements.

    For a kernel offset (d·i, d·j) and an output position (h, w), x_pad[n, c, s·h + d·i, s·w + d·j]
    then sits at  n·block + start(i, j) + c·P + h·Wq + w: within an image one offset is one
    contiguous run of C·P elements. Outputs are computed on the whole Hq x Wq grid and cropped
    to (OH, OW); grid positions past (OH, OW) read whatever follows (the next row, channel or
    image) and are thrown away, and in backward the cotangent is zero there. Elementwise ops
    on long contiguous runs are about twice as fast in NumPy as on strided windows (figures in
    `_depthwise_forward`), which is what this layout buys.
    """

    def __init__(self, shape, kernel_size, stride, padding, dilation):
        _, self.channels, self.height, self.width = shape
        self.stride, self.padding = stride, padding
        self.grid = (-(-(self.height + 2 * padding[0]) // stride[0]), -(-(self.width + 2 * padding[1]) // stride[1]))
        self.plane = self.grid[0] * self.grid[1]
        self.run = self.channels * self.plane  # one phase of one image
        self.block = stride[0] * stride[1] * self.run  # one image
        self.starts = []
        for i in range(kernel_size[0]):
            for j in range(kernel_size[1]):
                row, col = i * dilation[0], j * dilation[1]
                phase = (row % stride[0]) * stride[1] + col % stride[1]
                shift = (row // stride[0]) * self.grid[1] + col // stride[1]
                self.starts.append(phase * self.run + shift)
        # An offset's view of t images spans t blocks from its start: room past the last block.
        self.slack = max(self.starts)

    def buffer(self, images, dtype, xp):
        """A zeroed flat buffer for `images` images (xp: numpy or the CUDA module)."""
        return xp.zeros(images * self.block + self.slack, dtype=dtype)

    def _phase_regions(self):
        """For each phase (a, b): the input rows and columns that land in it, as slices, and
        where they land in the phase's grid."""
        (sh, sw), (ph, pw) = self.stride, self.padding
        for a in range(sh):
            first_row = (a - ph) % sh
            rows = slice(first_row, self.height, sh)
            grid_rows = slice((first_row + ph) // sh, (first_row + ph) // sh + len(range(first_row, self.height, sh)))
            for b in range(sw):
                first_col = (b - pw) % sw
                cols = slice(first_col, self.width, sw)
                grid_cols = slice(
                    (first_col + pw) // sw, (first_col + pw) // sw + len(range(first_col, self.width, sw))
                )
                yield a, b, rows, cols, grid_rows, grid_cols

    def _phases(self, flat, images):
        shape = (images, *self.stride, self.channels, *self.grid)
        return flat[: images * self.block].reshape(shape)

    def split(self, x, flat):
        """Write x (t, C, H, W) into `flat`, a buffer for t images whose padding is zero."""
        phases = self._phases(flat, x.shape[0])
        for a, b, rows, cols, grid_rows, grid_cols in self._phase_regions():
            phases[:, a, b, :, grid_rows, grid_cols] = x[:, :, rows, cols]

    def merge(self, flat, out):
        """The inverse of split: write the input region of `flat` into out (t, C, H, W)."""
        phases = self._phases(flat, out.shape[0])
        for a, b, rows, cols, grid_rows, grid_cols in self._phase_regions():
            out[:, :, rows, cols] = phases[:, a, b, :, grid_rows, grid_cols]

    def offset(self, flat, k, images):
        """Kernel offset k's view (t, C, P) of a flat buffer of t images."""
        start = self.starts[k]
        runs = flat[start : start + images * self.block].reshape(images, self.block)[:, : self.run]
        return runs.reshape(images, self.channels, self.plane)


# The depthwise loops run tile by tile, each tile a run of whole images of about this many
# bytes, so that a tile's buffers stay in cache across the kh·kw multiply-adds instead of the
# whole batch streaming through memory once per offset, and so that no batch-sized buffer is
# allocated besides the results (fresh buffers cost page faults: with batch-sized buffers the
# (16, 96, 32x32) 3x3 float32 forward + backward spent 13.5 of its 30 ms per step in the kernel,
# at 5,300 faults per step). That step took, by tile size: 256 KB 24.9 ms, 512 KB 16.9,
# 1 MB 16.5, 2 MB 17.6, 4 MB 21.3, untiled 43.9 (medians).
DEPTHWISE_TILE_BYTES = 1 << 20
# Above this size the per-offset weight blocks fall back to (C, m, 1) columns broadcast along
# the plane (a slower loop, but no copy of the weights per pixel).
DEPTHWISE_BLOCK_BYTES = 1 << 23


def _weight_blocks(weight, plane):
    """W (C, m, kh, kw) as (kh·kw, C, m, P) blocks, W[:, :, i, j] spread over the plane: a
    multiply by a whole block runs as one contiguous loop, about 1.7x faster than by a column
    broadcast along P (0.24 ms against 0.41 ms on (16, 96, 1024) float32)."""
    channels, multiplier = weight.shape[:2]
    kernel = np.moveaxis(weight.reshape(channels, multiplier, -1), 2, 0)[..., None]
    if kernel.size * plane * kernel.itemsize > DEPTHWISE_BLOCK_BYTES:
        return kernel
    return np.broadcast_to(kernel, (*kernel.shape[:3], plane)).copy()


def _image_tiles(n, image_bytes, xp):
    """Runs of whole images of about DEPTHWISE_TILE_BYTES each (at least one image); on a CUDA
    device one run of the whole batch (tiling is for the CPU's cache, and on a GPU every tile
    would cost kernel launches)."""
    if xp is not np:
        return [slice(0, n)], n
    step = min(n, max(1, DEPTHWISE_TILE_BYTES // max(1, image_bytes)))
    return [slice(start, min(start + step, n)) for start in range(0, n, step)], step


def _depthwise_forward(x, weight, stride, padding, dilation, output_size):
    """y[n, c·m + k] = Σ_offsets W[c·m + k, 0, i, j] · x shifted by the offset: per tile of
    images, one multiply and one add of contiguous runs per kernel offset. On (16, 96, 32x32),
    3x3 float32 this took 6.4 ms untiled, against 12.0 ms for the same loop over strided window
    views and 34 ms for im2col + a batched GEMM with an inner dimension of 9."""
    n, channels = x.shape[:2]
    out_channels, _, kh, kw = weight.shape
    multiplier = out_channels // channels
    xp = get_array_module(x)
    planes = _PhasePlanes(x.shape, (kh, kw), stride, padding, dilation)
    blocks = _weight_blocks(weight.reshape(channels, multiplier, kh, kw), planes.plane)
    tiles, step = _image_tiles(n, max(planes.block, out_channels * planes.plane) * x.itemsize, xp)
    flat = planes.buffer(step, x.dtype, xp)
    acc = xp.empty((step, channels, multiplier, planes.plane), dtype=x.dtype)
    term = xp.empty_like(acc)
    out = xp.empty((n, out_channels, *output_size), dtype=x.dtype)
    for tile in tiles:
        images = tile.stop - tile.start
        planes.split(x[tile], flat)
        tile_acc, tile_term = acc[:images], term[:images]
        for k in range(kh * kw):
            np.multiply(planes.offset(flat, k, images)[:, :, None], blocks[k], out=tile_term if k else tile_acc)
            if k:
                tile_acc += tile_term
        grid = tile_acc.reshape(images, out_channels, *planes.grid)
        out[tile] = grid[:, :, : output_size[0], : output_size[1]]
    return out


def _depthwise_backward(ctx, grad, x, weight, stride, padding, dilation):
    """dL/dW[c·m + k, 0, i, j] = Σ_{n,h,w} g[n, c·m + k] · x shifted by (i, j) (batched dot
    products); dL/dx = Σ_offsets the shifted scatter-add of W[·, i, j] · g. Tile by tile."""
    n, channels = ctx.input_shapes[0][:2]
    out_channels, _, kh, kw = ctx.input_shapes[1]
    out_h, out_w = ctx.output_size
    multiplier = out_channels // channels
    xp = get_array_module(grad)
    planes = _PhasePlanes(ctx.input_shapes[0], (kh, kw), stride, padding, dilation)
    tiles, step = _image_tiles(n, max(planes.block, out_channels * planes.plane) * grad.itemsize, xp)
    needs_x, needs_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    grad = grad.reshape(n, channels, multiplier, out_h, out_w)
    # g on the Hq x Wq grid, zero outside (OH, OW), so that grid positions the forward threw
    # away contribute nothing; only that region is rewritten from tile to tile.
    g_grid = xp.zeros((step, channels, multiplier, *planes.grid), dtype=grad.dtype)
    grad_x = grad_w = None
    if needs_w:
        x_flat = planes.buffer(step, grad.dtype, xp)
        grad_w = xp.zeros((channels, multiplier, kh * kw), dtype=grad.dtype)
    if needs_x:
        grad_x = xp.empty(ctx.input_shapes[0], dtype=grad.dtype)
        blocks = _weight_blocks(weight.reshape(channels, multiplier, kh, kw), planes.plane)
        dx_flat = planes.buffer(step, grad.dtype, xp)
        term = xp.empty((step, channels, planes.plane), dtype=grad.dtype)
    for tile in tiles:
        images = tile.stop - tile.start
        g_grid[:images, ..., :out_h, :out_w] = grad[tile]
        g = g_grid[:images].reshape(images, channels, multiplier, planes.plane)
        if needs_w:
            planes.split(x[tile], x_flat)
            for k in range(kh * kw):
                # (t, C, m, P) @ (t, C, P, 1): per-(image, channel) dot products in BLAS, 2.9 ms
                # for all nine offsets on the benchmark case against 4.4 ms with einsum.
                dots = np.matmul(g, planes.offset(x_flat, k, images)[..., None])
                grad_w[:, :, k] += dots.sum(axis=0)[..., 0]
        if needs_x:
            dx_flat.fill(0)
            tile_term = term[:images]
            for k in range(kh * kw):
                if multiplier == 1:
                    np.multiply(g[:, :, 0], blocks[k][:, 0], out=tile_term)
                else:
                    _einsum_into("ncmp,cmp->ncp", g, blocks[k], tile_term)
                planes.offset(dx_flat, k, images)[...] += tile_term
            planes.merge(dx_flat, grad_x[tile])
    if needs_w:
        grad_w = grad_w.reshape(out_channels, 1, kh, kw)
    return grad_x, grad_w


def _einsum_into(subscripts, a, b, out):
    """einsum(subscripts, a, b) written into `out` (CuPy's einsum has no out=)."""
    if type(out) is np.ndarray:
        np.einsum(subscripts, a, b, out=out)
    else:
        out[...] = get_array_module(out).einsum(subscripts, a, b)


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
    windows = _strided_view(
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
            _offset_view(padded, i * dilation[0], j * dilation[1], stride, (out_h, out_w))[...] += cols[:, :, i, j]
    return _crop(padded, padding, (height, width))


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
    _col2im_kernel(
        cupy.ascontiguousarray(cols), height, width, out_h, out_w, kh, kw, *stride, *padding, *dilation, img
    )
    return img


def _columns(x, kernel_size, stride, padding, dilation, output_size):
    """im2col of x padded, in this thread's workspace; a 1x1 conv with stride 1 and no padding
    uses x itself (a view)."""
    if _is_pointwise(kernel_size, stride, padding):
        return x.reshape(x.shape[0], x.shape[1], -1)
    size = x.shape[0] * x.shape[1] * kernel_size[0] * kernel_size[1] * output_size[0] * output_size[1]
    buffer = _workspace.take(size, x.dtype, get_array_module(x))
    return im2col(_pad(x, padding), kernel_size, stride, dilation, output_size, buffer)


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
_workspace = _Workspace()


def _is_pointwise(kernel_size, stride, padding) -> bool:
    return tuple(kernel_size) == (1, 1) and tuple(stride) == (1, 1) and tuple(padding) == (0, 0)


def _offset_view(a, row, col, stride, output_size):
    """a[..., row + s·h, col + s·w] for every output position (h, w): a strided view."""
    out_h, out_w = output_size
    return a[
        ..., row : row + stride[0] * (out_h - 1) + 1 : stride[0], col : col + stride[1] * (out_w - 1) + 1 : stride[1]
    ]


def _strided_view(a, shape, strides):
    """A read-only (on the CPU) strided view of `a`: NumPy's or the CUDA module's as_strided
    (CuPy's takes no writeable=)."""
    if type(a) is np.ndarray:
        return np.lib.stride_tricks.as_strided(a, shape=shape, strides=strides, writeable=False)
    return get_array_module(a).lib.stride_tricks.as_strided(a, shape, strides)


def _pad(x, padding):
    """x (..., H, W) with `padding` (ph, pw) zeros on both sides of H and W (x itself if none)."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    padded = get_array_module(x).zeros((*x.shape[:-2], x.shape[-2] + 2 * ph, x.shape[-1] + 2 * pw), dtype=x.dtype)
    padded[..., ph : ph + x.shape[-2], pw : pw + x.shape[-1]] = x
    return padded


def _crop(padded, padding, size):
    ph, pw = padding
    if ph == 0 and pw == 0:
        return padded
    return get_array_module(padded).ascontiguousarray(padded[..., ph : ph + size[0], pw : pw + size[1]])


def _check_shapes(x, weight, bias, stride, padding, dilation, groups):
    """Validate the arrays against the attributes; return the output size (OH, OW)."""
    if x.ndim != 4:
        raise ValueError(f"conv2d: expected input of shape (N, C, H, W), got shape {x.shape} ({x.ndim}-D)")
    if weight.ndim != 4:
        raise ValueError(
            f"conv2d: expected weight of shape (out_channels, in_channels / groups, kH, kW), got shape {weight.shape}"
        )
    for name, a in (("input", x), ("weight", weight)) + ((("bias", bias),) if bias is not None else ()):
        if a.dtype.kind != "f":
            raise TypeError(f"conv2d: {name} must be a floating-point array, got dtype {a.dtype}")
    if weight.dtype != x.dtype or (bias is not None and bias.dtype != x.dtype):
        raise TypeError(
            f"conv2d: input ({x.dtype}), weight ({weight.dtype})"
            + (f" and bias ({bias.dtype})" if bias is not None else "")
            + " must have the same dtype"
        )
    out_channels, group_channels, kh, kw = weight.shape
    if out_channels % groups:
        raise ValueError(
            f"conv2d: weight of shape {weight.shape} has {out_channels} output channels, "
            f"not divisible by groups={groups}"
        )
    if x.shape[1] != group_channels * groups:
        raise ValueError(
            f"conv2d: input of shape {x.shape} has {x.shape[1]} channels, but weight of shape {weight.shape} "
            f"with groups={groups} expects {group_channels * groups} ({group_channels} per group)"
        )
    if bias is not None and bias.shape != (out_channels,):
        raise ValueError(
            f"conv2d: bias of shape {bias.shape} does not match weight of shape {weight.shape}; "
            f"expected ({out_channels},)"
        )
    padded = (x.shape[2] + 2 * padding[0], x.shape[3] + 2 * padding[1])
    reach = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    if reach[0] > padded[0] or reach[1] > padded[1]:
        raise ValueError(
            f"conv2d: kernel of size ({kh}, {kw}) with dilation {tuple(dilation)} spans ({reach[0]}, {reach[1]}), "
            f"larger than the padded input ({padded[0]}, {padded[1]}) (input shape {x.shape}, padding {tuple(padding)})"
        )
    return (padded[0] - reach[0]) // stride[0] + 1, (padded[1] - reach[1]) // stride[1] + 1


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value), int(value))
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    ):
        return (int(value[0]), int(value[1]))
    raise TypeError(f"conv2d: {name} must be an int or a pair of ints, got {value!r}")


def conv2d(
    x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1, groups: int = 1
) -> Tensor:
    """2-D cross-correlation of x (N, C, H, W) with weight (O, C / groups, kH, kW), plus bias (O,).

    stride, padding and dilation are ints or (height, width) pairs; padding may also be
    "valid" (no padding) or "same" (stride 1, output size = input size; the kernel's reach
    d·(k-1) must be even so that the padding is symmetric). The output is
    (N, O, (H + 2p - d·(kH-1) - 1) // s + 1, ...), as in PyTorch.
    """
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    if min(stride) <= 0:
        raise ValueError(f"conv2d: stride must be positive, got {stride}")
    if min(dilation) <= 0:
        raise ValueError(f"conv2d: dilation must be positive, got {dilation}")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups <= 0:
        raise ValueError(f"conv2d: groups must be a positive int, got {groups!r}")
    if isinstance(padding, str):
        padding = _string_padding(padding, weight, stride, dilation)
    else:
        padding = _pair(padding, "padding")
        if min(padding) < 0:
            raise ValueError(f"conv2d: padding must be non-negative, got {padding}")
    attrs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": int(groups)}
    if bias is None:
        return Conv2d.apply(x, weight, **attrs)
    return Conv2d.apply(x, weight, bias, **attrs)


def _string_padding(padding: str, weight, stride, dilation) -> tuple[int, int]:
    if padding == "valid":
        return (0, 0)
    if padding != "same":
        raise ValueError(f"conv2d: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    if stride != (1, 1):
        raise ValueError(f"conv2d: padding='same' needs stride 1, got stride {stride}")
    if getattr(weight, "ndim", 0) != 4:
        raise ValueError(
            f"conv2d: expected weight of shape (out_channels, in_channels / groups, kH, kW), got shape {weight.shape}"
        )
    reach = [d * (k - 1) for d, k in zip(dilation, weight.shape[2:])]
    if reach[0] % 2 or reach[1] % 2:
        raise ValueError(
            f"conv2d: padding='same' with kernel {tuple(weight.shape[2:])} and dilation {dilation} needs asymmetric "
            "padding, which is not supported; pad the input explicitly"
        )
    return (reach[0] // 2, reach[1] // 2)
