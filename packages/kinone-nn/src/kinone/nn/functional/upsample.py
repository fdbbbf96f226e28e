"""interpolate: PyTorch's F.interpolate in modes nearest, linear (3-D input) and bilinear
(4-D input), with size or scale_factor, align_corners and recompute_scale_factor.

Both modes are separable: along each spatial axis the output is a fixed linear map of the
input, an (out, in) matrix A with one entry per row (nearest) or two (linear: 1 - λ and λ).
So one Function does both, y = A_h · x · A_wᵀ, and its gradient is the transposed product:
GEMMs on the CPU and on the GPU, no scatter (a nearest upsampling's gradient sums the g
entries that copied one input, which here is a product with a 0/1 matrix: deterministic).
The matrices are built on the host with PyTorch's index arithmetic (float32 for nearest, as
its kernel) and moved to the input's device.
"""

from __future__ import annotations

import math

import numpy as np

from kinone.autograd import Function, Tensor
from kinone.autograd.backend import as_array, get_array_module

MODES = {"nearest": None, "linear": 3, "bilinear": 4}


class Interpolate(Function):
    """y = x ×_H A_H ×_W A_W (each spatial axis mapped by its (out, in) matrix: y = A_h · x · A_wᵀ
    for 4-D input), with A[o, floor(o·scale)] = 1 (nearest) or A[o, i0] = 1 - λ, A[o, i0 + 1] = λ at
    the source coordinate i0 + λ (linear);  dL/dx = g ×_H A_Hᵀ ×_W A_Wᵀ (dL/dx = A_hᵀ · g · A_w).

    Attributes (all given, by interpolate): output_size (one int per spatial axis), mode,
    align_corners (a bool), scales (the scale factor per axis PyTorch's kernel uses, or None).
    """

    @staticmethod
    def forward(ctx, x, *, output_size, mode, align_corners, scales):
        matrices = []
        for k, out in enumerate(output_size):
            length = x.shape[2 + k]
            scale = None if scales is None else scales[k]
            matrix = interpolation_matrix(length, out, mode, align_corners, scale, x.dtype)
            matrices.append(as_array(matrix, like=x))
        ctx.save_for_backward(*matrices)
        return _apply_matrices(x, matrices, transpose=False)

    @staticmethod
    def backward(ctx, grad):
        grad = get_array_module(grad).ascontiguousarray(grad)
        return _apply_matrices(grad, ctx.saved, transpose=True)


def _apply_matrices(x, matrices, transpose):
    """x with its last len(matrices) axes mapped by the matrices (by their transposes when
    going backward): the last axis as one (…, W) x (W, OW) GEMM, the one before as a batched
    product from the left."""
    last = matrices[-1] if transpose else matrices[-1].T
    y = x @ last
    if len(matrices) == 2:
        first = matrices[0].T if transpose else matrices[0]
        y = np.matmul(first, y)
    return y


def interpolation_matrix(length: int, out: int, mode: str, align_corners: bool, scale, dtype) -> np.ndarray:
    """The (out, length) matrix of one axis (host NumPy), with PyTorch's source indices:
    nearest floor(o · s) with s = 1 / scale_factor or length / out (float32, as its kernel);
    linear at s·o (align_corners: s = (length - 1) / (out - 1)) or max(s·(o + 0.5) - 0.5, 0)."""
    matrix = np.zeros((out, length), dtype=np.float64)
    rows = np.arange(out)
    if mode == "nearest":
        step = np.float32(1.0 / scale) if scale is not None else np.float32(length) / np.float32(out)
        source = np.minimum(np.floor(rows.astype(np.float32) * step).astype(np.int64), length - 1)
        matrix[rows, source] = 1.0
        return matrix.astype(dtype)
    if align_corners:
        step = (length - 1) / (out - 1) if out > 1 else 0.0
        coordinate = rows * step
    else:
        step = 1.0 / scale if scale is not None else length / out
        coordinate = np.maximum((rows + 0.5) * step - 0.5, 0.0)
    low = np.minimum(np.floor(coordinate).astype(np.int64), length - 1)
    weight = np.clip(coordinate - low, 0.0, 1.0)
    high = np.minimum(low + 1, length - 1)
    matrix[rows, low] = 1.0 - weight
    matrix[rows, high] += weight
    return matrix.astype(dtype)


def interpolate(
    input: Tensor,
    size=None,
    scale_factor=None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> Tensor:
    """Resize input (N, C, L) or (N, C, H, W) to `size` or by `scale_factor` (one value or one
    per spatial dim; the output is floor(in · scale_factor)), as PyTorch. Modes: "nearest",
    "linear" (3-D input), "bilinear" (4-D input); align_corners only with the linear modes.
    With scale_factor the source coordinates use 1 / scale_factor, unless
    recompute_scale_factor=True (then in / out, as with size)."""
    if mode not in MODES:
        raise ValueError(f"interpolate: mode {mode!r} is not supported; Kinone has {', '.join(MODES)}")
    if input.ndim not in (3, 4):
        raise ValueError(
            f"interpolate: expected input of shape (N, C, L) or (N, C, H, W), got shape {tuple(input.shape)}"
        )
    if MODES[mode] is not None and input.ndim != MODES[mode]:
        raise ValueError(f"interpolate: got {input.ndim}D input, but {mode} mode needs {MODES[mode]}D input")
    if antialias:
        raise ValueError(
            "interpolate: antialias=True is not supported by Kinone (PyTorch uses it only when downsampling)"
        )
    if align_corners is not None and mode == "nearest":
        raise ValueError(
            "interpolate: align_corners option can only be set with the interpolating modes: linear | bilinear"
        )
    spatial = input.ndim - 2
    output_size, scales = _output_size(input.shape[2:], size, scale_factor, recompute_scale_factor, spatial)
    return Interpolate.apply(
        input, output_size=output_size, mode=mode, align_corners=bool(align_corners), scales=scales
    )


def _output_size(in_size, size, scale_factor, recompute_scale_factor, spatial):
    """The output size and the scales the kernel uses (None: in / out), as PyTorch."""
    if (size is None) == (scale_factor is None):
        raise ValueError(
            "interpolate: only one of size or scale_factor should be defined"
            if size is not None
            else "interpolate: either size or scale_factor should be defined"
        )
    if size is not None:
        sizes = tuple(size) if isinstance(size, (tuple, list)) else (size,) * spatial
        if len(sizes) != spatial or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in sizes
        ):
            raise ValueError(
                f"interpolate: size must be a positive int or {spatial} of them ({spatial} spatial dims), got {size!r}"
            )
        return tuple(int(s) for s in sizes), None
    factors = tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * spatial
    if len(factors) != spatial or not all(isinstance(f, (int, float, np.number)) and f > 0 for f in factors):
        raise ValueError(
            f"interpolate: scale_factor must be a positive number or {spatial} of them for {spatial} spatial dims, "
            f"got {scale_factor!r}"
        )
    sizes = tuple(math.floor(float(length) * float(f)) for length, f in zip(in_size, factors, strict=True))
    if min(sizes) < 1:
        raise ValueError(f"interpolate: input of spatial size {tuple(in_size)} scaled by {factors} is empty: {sizes}")
    return sizes, None if recompute_scale_factor else tuple(float(f) for f in factors)
