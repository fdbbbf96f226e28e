"""Convolution (PyTorch's conv2d and conv1d: a cross-correlation) and its adjoint, the
transposed convolution, as Functions with fused backward passes.

Conv2d computes in one of two ways, chosen by the shapes:

- **im2col + GEMM** (every conv that mixes channels): the windows of the padded input are
  copied into columns (N, G, Cg·kh·kw, OH·OW) (`im2col.py`) and multiplied by the weight
  (G, Og, Cg·kh·kw) in one batched `matmul`, whose output lands in NCHW order. A 1x1 conv with
  stride 1 and no padding uses the input itself as its columns. Backward, for stride 1: one
  im2col of the padded gradient (the transposed convolution's columns) and two GEMMs, one
  against the flipped kernel for dL/dx and one against x for dL/dW; for other strides: dL/dW
  against the columns of x, and dL/dx as Wᵀ·g scattered back by col2im.
- **depthwise** (groups == in_channels > 1: one input channel per group, any channel
  multiplier): a loop over the kh·kw kernel offsets of elementwise multiply-adds over a flat,
  stride-phase layout of the input (`PhasePlanes`, in `stride_phases.py`), where every offset
  is one contiguous slice. A GEMM with an inner dimension of kh·kw is mostly overhead.

ConvTranspose2d runs the same pieces the other way round: its forward is Conv2d's input
gradient (Wᵀ·x, then col2im), its input gradient Conv2d's forward (im2col of g, then a GEMM).

Only the inputs and the weight are saved for backward, never the columns, which are kh·kw
times the input: for every conv of a network that would be nine times its input's memory,
held from forward to backward. The attributes are checked once, by the public function, and
forward stores them on ctx as one `ConvGeometry` that backward reads.

Devices: the math is written once for NumPy and CuPy (`xp = get_array_module(x)` where arrays
are created). Every step is a gather, a strided slice add or a GEMM, so results are
deterministic on the GPU too (see col2im).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from kinone.autograd import Function, Tensor
from kinone.autograd.backend import get_array_module

from .arguments import pair, single
from .im2col import col2im, columns, workspace
from .stride_phases import PhasePlanes


class ConvGeometry(NamedTuple):
    """The attributes of one convolution call, as forward stored them on ctx: stride, padding,
    dilation as (height, width) pairs, groups, and the spatial size of the output (of the
    transposed convolution: the spatial size of its input, the windows' count)."""

    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    output_size: tuple


class Conv2d(Function):
    """y = b[o] + Σ_{c,i,j} W[o, c, i, j] · x_pad[n, c, s·h + d·i, s·w + d·j] at each output (n, o, h, w),
    c over o's group;  dL/dW = Σ_n g · colsᵀ (cols: the im2col windows of x),  dL/db = Σ_{n,h,w} g,
    dL/dx = col2im(Wᵀ · g). For stride 1 both are computed from the windows of g padded by
    d·(k-1) - p: dL/dx is their correlation with the flipped, channel-transposed W and dL/dW
    the flipped correlation of x with them.

    Attributes (all given, by conv2d): stride, padding, dilation as (height, width) pairs; groups an int.
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None, *, stride, padding, dilation, groups):
        out_h, out_w = _check_shapes(x, weight, bias, stride, padding, dilation, groups)
        n, channels = x.shape[:2]
        out_channels = weight.shape[0]
        ctx.geometry = geometry = ConvGeometry(stride, padding, dilation, groups, (out_h, out_w))
        ctx.depthwise = groups == channels and groups > 1
        # x is needed for the weight gradient, the weight for the input gradient.
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, weight if ctx.needs_input_grad[0] else None)
        if ctx.depthwise:
            out = _depthwise_forward(x, weight, geometry)
        else:
            # Columns (N, G, K, P) with the weight on the left: the product lands in NCHW. On
            # (16, 64->64, 32x32) 3x3 float32 the GEMM took 9.8 ms, against 10.7 ms for one
            # (O, K) x (K, N·P) GEMM (plus a transpose back to NCHW) and 8.8 ms for channels-last
            # rows (N·P, K) x (K, O), whose im2col (from an NHWC copy) took 14.3 ms against 8.7 ms.
            cols = columns(x, weight.shape[2:], stride, padding, dilation, (out_h, out_w))
            cols = cols.reshape(n, groups, -1, out_h * out_w)
            out = _weight_times_columns(weight.reshape(groups, out_channels // groups, -1), cols)
        out = out.reshape(n, out_channels, out_h, out_w)
        if bias is not None:
            out += bias.reshape(-1, 1, 1)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved
        needs = ctx.needs_input_grad
        # A gradient broadcast from a sum has zero strides; matmul would not hand it to BLAS.
        grad = get_array_module(grad).ascontiguousarray(grad)
        grad_b = grad.sum(axis=(0, 2, 3)) if len(needs) > 2 and needs[2] else None
        if ctx.depthwise:
            grad_x, grad_w = _depthwise_backward(ctx, grad, x, weight)
        else:
            grad_x, grad_w = _gemm_backward(ctx, grad, x, weight)
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


def _gemm_backward(ctx, grad, x, weight):
    """Both gradients of the im2col + GEMM path (see Conv2d's docstring for the two routes)."""
    stride, padding, dilation, groups, (out_h, out_w) = ctx.geometry
    x_shape, w_shape = ctx.input_shapes[0], ctx.input_shapes[1]
    n, channels, height, width = x_shape
    out_channels, _, kh, kw = w_shape
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
        g_cols = columns(grad, (kh, kw), (1, 1), q, dilation, (height, width))
        g_cols = g_cols.reshape(n, groups, group_out * kh * kw, height * width)
        if needs_x:
            flipped = weight.reshape(groups, group_out, group_in, kh, kw)[..., ::-1, ::-1].swapaxes(1, 2)
            grad_x = _weight_times_columns(xp.ascontiguousarray(flipped).reshape(groups, group_in, -1), g_cols).reshape(
                x_shape
            )
        if needs_w:
            x_rows = x.reshape(n, groups, group_in, height * width)
            correlation = _sum_of_products(x_rows, g_cols)  # (G, Cg, Og·kh·kw)
            correlation = correlation.reshape(groups, group_in, group_out, kh, kw)[..., ::-1, ::-1]
            grad_w = correlation.swapaxes(1, 2).reshape(w_shape)
        return grad_x, grad_w
    g = grad.reshape(n, groups, group_out, out_h * out_w)
    if needs_w:
        cols = columns(x, (kh, kw), stride, padding, dilation, (out_h, out_w))
        cols = cols.reshape(n, groups, -1, out_h * out_w)
        grad_w = _sum_of_products(g, cols).reshape(w_shape)
    if needs_x:
        w_t = xp.ascontiguousarray(weight.reshape(groups, group_out, -1).swapaxes(1, 2))
        size = n * channels * kh * kw * out_h * out_w
        # Wᵀ·g has the shape of the columns of x, which are no longer needed: into the workspace.
        buffer = workspace.take(size, grad.dtype, xp)
        d_cols = np.matmul(w_t, g, out=buffer.reshape(n, groups, -1, out_h * out_w))
        grad_x = col2im(d_cols.reshape(n, channels, kh, kw, out_h, out_w), x_shape, stride, padding, dilation)
    return grad_x, grad_w


class ConvTranspose2d(Function):
    """The adjoint of Conv2d in x (a "deconvolution"): with x (N, C, H, W) and W (C, O / groups, kH, kW),
    y = b[o] + Σ_{c,h,w,i,j} W[c, o, i, j] · x[n, c, h, w] added at y[n, o, s·h + d·i - p, s·w + d·j - p],
    c over o's group, i.e. y = col2im(Wᵀ · x) cropped by p, with output size
    (H - 1)·s - 2p + d·(kH - 1) + output_padding + 1;
    dL/dx = conv2d(g, W) (stride s, padding p, dilation d, the same groups),
    dL/dW[c, o, i, j] = Σ_{n,h,w} x[n, c, h, w] · g_pad[n, o, s·h + d·i, s·w + d·j] (x times the
    im2col windows of g), dL/db = Σ_{n,h,w} g.

    Attributes (all given, by conv_transpose2d): stride, padding, output_padding, dilation as
    (height, width) pairs; groups an int.
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None, *, stride, padding, output_padding, dilation, groups):
        output_size = _check_transpose_shapes(x, weight, bias, stride, padding, output_padding, dilation, groups)
        n, channels, height, width = x.shape
        _, group_out, kh, kw = weight.shape
        out_channels = group_out * groups
        ctx.geometry = ConvGeometry(stride, padding, dilation, groups, (height, width))
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, weight if ctx.needs_input_grad[0] else None)
        w_t = get_array_module(x).ascontiguousarray(weight.reshape(groups, channels // groups, -1).swapaxes(1, 2))
        cols = _weight_times_columns(w_t, x.reshape(n, groups, channels // groups, height * width))
        cols = cols.reshape(n, out_channels, kh, kw, height, width)
        out = col2im(cols, (n, out_channels, *output_size), stride, padding, dilation)
        if bias is not None:
            out += bias.reshape(-1, 1, 1)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved
        stride, padding, dilation, groups, (height, width) = ctx.geometry
        needs = ctx.needs_input_grad
        n, channels = ctx.input_shapes[0][:2]
        w_shape = ctx.input_shapes[1]
        grad = get_array_module(grad).ascontiguousarray(grad)
        grad_b = grad.sum(axis=(0, 2, 3)) if len(needs) > 2 and needs[2] else None
        # The windows of g are Conv2d's columns of g: one im2col serves both gradients.
        g_cols = columns(grad, w_shape[2:], stride, padding, dilation, (height, width))
        g_cols = g_cols.reshape(n, groups, -1, height * width)
        grad_x = grad_w = None
        if needs[0]:
            grad_x = _weight_times_columns(weight.reshape(groups, channels // groups, -1), g_cols)
            grad_x = grad_x.reshape(ctx.input_shapes[0])
        if needs[1]:
            x_rows = x.reshape(n, groups, channels // groups, height * width)
            grad_w = _sum_of_products(x_rows, g_cols).reshape(w_shape)
        return (grad_x, grad_w) if len(needs) == 2 else (grad_x, grad_w, grad_b)


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


def _depthwise_forward(x, weight, geometry):
    """y[n, c·m + k] = Σ_offsets W[c·m + k, 0, i, j] · x shifted by the offset: per tile of
    images, one multiply and one add of contiguous runs per kernel offset. On (16, 96, 32x32),
    3x3 float32 this took 6.4 ms untiled, against 12.0 ms for the same loop over strided window
    views and 34 ms for im2col + a batched GEMM with an inner dimension of 9."""
    n, channels = x.shape[:2]
    out_channels, _, kh, kw = weight.shape
    multiplier = out_channels // channels
    xp = get_array_module(x)
    output_size = geometry.output_size
    planes = PhasePlanes(x.shape, (kh, kw), geometry.stride, geometry.padding, geometry.dilation)
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


def _depthwise_backward(ctx, grad, x, weight):
    """dL/dW[c·m + k, 0, i, j] = Σ_{n,h,w} g[n, c·m + k] · x shifted by (i, j) (batched dot
    products); dL/dx = Σ_offsets the shifted scatter-add of W[·, i, j] · g. Tile by tile."""
    n, channels = ctx.input_shapes[0][:2]
    out_channels, _, kh, kw = ctx.input_shapes[1]
    geometry = ctx.geometry
    out_h, out_w = geometry.output_size
    multiplier = out_channels // channels
    xp = get_array_module(grad)
    planes = PhasePlanes(ctx.input_shapes[0], (kh, kw), geometry.stride, geometry.padding, geometry.dilation)
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


def _check_shapes(x, weight, bias, stride, padding, dilation, groups):
    """Validate the arrays against the attributes; return the output size (OH, OW)."""
    _check_arrays("conv2d", x, weight, bias, "(out_channels, in_channels / groups, kH, kW)")
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


def _check_arrays(op, x, weight, bias, weight_layout):
    """4-D input and weight, all floating-point of one dtype."""
    if x.ndim != 4:
        raise ValueError(f"{op}: expected input of shape (N, C, H, W), got shape {x.shape} ({x.ndim}-D)")
    if weight.ndim != 4:
        raise ValueError(f"{op}: expected weight of shape {weight_layout}, got shape {weight.shape}")
    for name, a in (("input", x), ("weight", weight)) + ((("bias", bias),) if bias is not None else ()):
        if a.dtype.kind != "f":
            raise TypeError(f"{op}: {name} must be a floating-point array, got dtype {a.dtype}")
    if weight.dtype != x.dtype or (bias is not None and bias.dtype != x.dtype):
        raise TypeError(
            f"{op}: input ({x.dtype}), weight ({weight.dtype})"
            + (f" and bias ({bias.dtype})" if bias is not None else "")
            + " must have the same dtype"
        )


def _check_transpose_shapes(x, weight, bias, stride, padding, output_padding, dilation, groups):
    """Validate the arrays of ConvTranspose2d; return its output size (OH, OW)."""
    op = "conv_transpose2d"
    _check_arrays(op, x, weight, bias, "(in_channels, out_channels / groups, kH, kW)")
    in_channels, group_out, kh, kw = weight.shape
    if x.shape[1] != in_channels or in_channels % groups:
        raise ValueError(
            f"{op}: input of shape {x.shape} has {x.shape[1]} channels, but weight of shape {weight.shape} "
            f"with groups={groups} expects {in_channels} (a multiple of groups)"
        )
    if bias is not None and bias.shape != (group_out * groups,):
        raise ValueError(
            f"{op}: bias of shape {bias.shape} does not match weight of shape {weight.shape} with groups={groups}; "
            f"expected ({group_out * groups},)"
        )
    size = tuple(
        (length - 1) * s - 2 * p + d * (k - 1) + extra + 1
        for length, s, p, d, k, extra in zip(
            x.shape[2:], stride, padding, dilation, (kh, kw), output_padding, strict=True
        )
    )
    if min(size) < 1:
        raise ValueError(
            f"{op}: input of shape {x.shape} with kernel ({kh}, {kw}), stride {stride}, padding {padding}, "
            f"dilation {dilation} and output_padding {output_padding} gives an empty output {size}"
        )
    return size


def conv2d(
    x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1, groups: int = 1
) -> Tensor:
    """2-D cross-correlation of x (N, C, H, W) with weight (O, C / groups, kH, kW), plus bias (O,).

    stride, padding and dilation are ints or (height, width) pairs; padding may also be
    "valid" (no padding) or "same" (stride 1, output size = input size; the kernel's reach
    d·(k-1) must be even so that the padding is symmetric). The output is
    (N, O, (H + 2p - d·(kH-1) - 1) // s + 1, ...), as in PyTorch.
    """
    attrs = _conv_attrs("conv2d", weight, stride, padding, dilation, groups)
    if bias is None:
        return Conv2d.apply(x, weight, **attrs)
    return Conv2d.apply(x, weight, bias, **attrs)


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1, groups: int = 1):
    """1-D cross-correlation of input (N, C, L) with weight (O, C / groups, k), plus bias (O,):
    conv2d on (N, C, 1, L) with a (O, C / groups, 1, k) kernel (the same Function, its math and
    its ONNX form). stride, padding and dilation are ints or 1-tuples; padding may be "valid"
    or "same". The output is (N, O, (L + 2p - d·(k-1) - 1) // s + 1), as in PyTorch."""
    op = "conv1d"
    if input.ndim != 3 or weight.ndim != 3:
        raise ValueError(
            f"conv1d: expected input (N, C, L) and weight (out_channels, in_channels / groups, k), "
            f"got shapes {tuple(input.shape)} and {tuple(weight.shape)}"
        )
    (stride,), (dilation,) = single(stride, "stride", op), single(dilation, "dilation", op)
    if not isinstance(padding, str):
        (padding,) = single(padding, "padding", op)
        padding = (0, padding)
    n, channels, length = input.shape
    out = conv2d(
        input.reshape(n, channels, 1, length),
        weight.reshape(*weight.shape[:2], 1, weight.shape[2]),
        bias,
        (1, stride),
        padding,
        (1, dilation),
        groups,
    )
    return out.reshape(n, out.shape[1], out.shape[3])


def conv_transpose2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride=1,
    padding=0,
    output_padding=0,
    groups: int = 1,
    dilation=1,
) -> Tensor:
    """Transposed 2-D convolution of input (N, C, H, W) with weight (C, O / groups, kH, kW), plus
    bias (O,): the gradient of conv2d with respect to its input, as PyTorch. The output is
    (N, O, (H - 1)·s - 2p + d·(kH - 1) + output_padding + 1, ...); output_padding (smaller than
    the stride or the dilation) picks one of the sizes that a strided conv2d maps to H."""
    op = "conv_transpose2d"
    if isinstance(padding, str):
        raise TypeError(
            f"{op}: padding must be an int or a pair of ints ('valid' and 'same' are conv2d's), got {padding!r}"
        )
    attrs = _conv_attrs(op, weight, stride, padding, dilation, groups)
    output_padding = pair(output_padding, "output_padding", op)
    for extra, s, d in zip(output_padding, attrs["stride"], attrs["dilation"], strict=True):
        if extra < 0 or (extra >= s and extra >= d):
            raise ValueError(
                f"{op}: output padding must be non-negative and smaller than either stride or dilation, but got "
                f"output_padding={output_padding}, stride={attrs['stride']}, dilation={attrs['dilation']}"
            )
    inputs = (input, weight) if bias is None else (input, weight, bias)
    return ConvTranspose2d.apply(*inputs, output_padding=output_padding, **attrs)


def _conv_attrs(op, weight, stride, padding, dilation, groups) -> dict:
    """The checked attributes of Conv2d (stride, padding, dilation as pairs; groups)."""
    stride, dilation = pair(stride, "stride", op), pair(dilation, "dilation", op)
    if min(stride) <= 0:
        raise ValueError(f"{op}: stride must be positive, got {stride}")
    if min(dilation) <= 0:
        raise ValueError(f"{op}: dilation must be positive, got {dilation}")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups <= 0:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    if isinstance(padding, str):
        padding = _string_padding(op, padding, weight.shape, stride, dilation)
    else:
        padding = pair(padding, "padding", op)
        if min(padding) < 0:
            raise ValueError(f"{op}: padding must be non-negative, got {padding}")
    return {"stride": stride, "padding": padding, "dilation": dilation, "groups": int(groups)}


def _string_padding(op, padding: str, weight_shape, stride, dilation) -> tuple[int, int]:
    if padding == "valid":
        return (0, 0)
    if padding != "same":
        raise ValueError(f"{op}: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    if stride != (1, 1):
        raise ValueError(f"{op}: padding='same' needs stride 1, got stride {stride}")
    if len(weight_shape) != 4:
        raise ValueError(
            f"{op}: expected weight of shape (out_channels, in_channels / groups, kH, kW), got shape {weight_shape}"
        )
    reach = [d * (k - 1) for d, k in zip(dilation, weight_shape[2:], strict=True)]
    if reach[0] % 2 or reach[1] % 2:
        raise ValueError(
            f"{op}: padding='same' with kernel {tuple(weight_shape[2:])} and dilation {dilation} needs asymmetric "
            "padding, which is not supported; pad the input explicitly"
        )
    return (reach[0] // 2, reach[1] // 2)
