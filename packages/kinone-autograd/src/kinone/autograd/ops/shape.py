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
            raise ValueError(
                f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) into {shape}"
            ) from None

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


class Flip(Function):
    """y = x reversed along each dim in `dims` (a copy, as torch.flip);  dL/dx = g reversed
    along the same dims."""

    @staticmethod
    def forward(ctx, x, *, dims):
        ctx.dims = dims
        return np.flip(x, dims).copy()

    @staticmethod
    def backward(ctx, grad):
        return np.flip(grad, ctx.dims)


class Roll(Function):
    """y = x shifted cyclically by `shifts` along `dims` (the flattened x when dims is None;
    torch.roll);  dL/dx = g shifted back by -shifts."""

    @staticmethod
    def forward(ctx, x, *, shifts, dims=None):
        ctx.shifts, ctx.dims = shifts, dims
        return np.roll(x, shifts, axis=dims)

    @staticmethod
    def backward(ctx, grad):
        back = tuple(-s for s in ctx.shifts) if isinstance(ctx.shifts, tuple) else -ctx.shifts
        return np.roll(grad, back, axis=ctx.dims)


class Repeat(Function):
    """y = x tiled `repeats` times along each dim (torch's Tensor.repeat; leading dims are
    added when repeats is longer than x's shape);  dL/dx = g summed over the copies: g
    reshaped to (r₀, s₀, r₁, s₁, ...) and summed over every rᵢ."""

    @staticmethod
    def forward(ctx, x, *, repeats):
        if len(repeats) < x.ndim:
            raise ValueError(
                f"repeat: {len(repeats)} repeats given for a tensor of {x.ndim} dims (shape {x.shape}); "
                "give at least one per dim"
            )
        padded = (1,) * (len(repeats) - x.ndim) + x.shape
        ctx.input_shape, ctx.padded, ctx.repeats = x.shape, padded, repeats
        return np.tile(x.reshape(padded), repeats)

    @staticmethod
    def backward(ctx, grad):
        pairs = [size for pair in zip(ctx.repeats, ctx.padded) for size in pair]
        summed = grad.reshape(pairs).sum(axis=tuple(range(0, len(pairs), 2)))
        return summed.reshape(ctx.input_shape)


def _dim_list(dims, ndim: int, op: str) -> tuple:
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    for d in dims:
        if not -ndim <= d < ndim:
            raise IndexError(f"{op}: dim {d} is out of range for a tensor of {ndim} dims")
    return tuple(d % ndim for d in dims)


# The functional forms (torch.flip, torch.roll, ...); Tensor binds them as methods.
def flip(input, dims):
    """`input` reversed along `dims` (see `Flip`)."""
    return Flip.apply(input, dims=_dim_list(dims, input.ndim, "flip"))


def roll(input, shifts, dims=None):
    """`input` shifted cyclically (see `Roll`); without dims, over the flattened tensor."""
    if dims is None:
        if not isinstance(shifts, int):
            raise ValueError(f"roll: without dims, shifts must be one int; got {shifts}")
        return Roll.apply(input, shifts=shifts, dims=None)
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    dims = _dim_list(dims, input.ndim, "roll")
    if len(shifts) != len(dims):
        raise ValueError(f"roll: {len(shifts)} shifts but {len(dims)} dims; give one shift per dim")
    return Roll.apply(input, shifts=shifts, dims=dims)


def repeat(input, *repeats):
    """`input` tiled `repeats` times per dim (Tensor.repeat; see `Repeat`)."""
    repeats = repeats[0] if len(repeats) == 1 and not isinstance(repeats[0], int) else repeats
    return Repeat.apply(input, repeats=tuple(int(r) for r in repeats))


def _slice_along(input, axis: int, start: int, stop: int):
    return input[(slice(None),) * axis + (slice(start, stop),)]


def split(tensor, split_size_or_sections, dim: int = 0) -> tuple:
    """Views of `tensor` along `dim`: pieces of `split_size_or_sections` (an int; the last may be
    smaller) or of the listed sizes, which must add up to the dim (torch.split)."""
    (axis,) = _dim_list(dim, tensor.ndim, "split")
    length = tensor.shape[axis]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise ValueError(f"split: split_size must be positive, got {step}")
        sizes = [min(step, length - start) for start in range(0, length, step)] or [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != length:
            raise ValueError(f"split: sizes {sizes} add up to {sum(sizes)}, not to dim {dim} of size {length}")
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return tuple(_slice_along(tensor, axis, start, start + size) for start, size in zip(starts, sizes))


def chunk(input, chunks: int, dim: int = 0) -> tuple:
    """`chunks` pieces of ceil(size / chunks) along `dim` (fewer when the size runs out, as
    torch.chunk)."""
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    (axis,) = _dim_list(dim, input.ndim, "chunk")
    length = input.shape[axis]
    return split(input, max(-(-length // chunks), 1), dim)


def narrow(input, dim: int, start, length: int):
    """The view of `input` of `length` entries along `dim` from `start` (torch.narrow: a
    negative start counts from the end; `start` may be a 0-d integer tensor). Served by
    indexing, so its gradient is GetItem's."""
    if input.ndim == 0:
        raise RuntimeError("narrow: cannot be applied to a 0-dim tensor")
    (axis,) = _dim_list(dim, input.ndim, "narrow")
    size, start, length = input.shape[axis], int(start), int(length)
    if not -size <= start <= size:
        raise IndexError(
            f"narrow: start {start} is out of range for dim {dim} of size {size} (expected in [{-size}, {size}])"
        )
    if start < 0:
        start += size
    if length < 0:
        raise RuntimeError(f"narrow: length must be non-negative, got {length}")
    if start + length > size:
        raise RuntimeError(f"narrow: start ({start}) + length ({length}) exceeds dim {dim}'s size ({size})")
    return _slice_along(input, axis, start, start + length)


def t(input):
    """`input` with its two dims swapped (torch.t): a 0-d or 1-D tensor as it is (a view),
    a 3-D or larger one refused, as PyTorch."""
    if input.ndim > 2:
        raise RuntimeError(
            f"t: expects a tensor with <= 2 dimensions, but the input is {input.ndim}-D "
            f"(shape {tuple(input.shape)}); use transpose(dim0, dim1) or .mT"
        )
    return Permute.apply(input, dims=tuple(reversed(range(input.ndim))))


def matrix_transpose(input):
    """`input.mT`: the last two dims swapped (a batch of matrices transposed)."""
    if input.ndim < 2:
        raise RuntimeError(f"mT: only supported on matrices or batches of matrices; got a {input.ndim}-D tensor")
    dims = list(range(input.ndim))
    dims[-2], dims[-1] = dims[-1], dims[-2]
    return Permute.apply(input, dims=tuple(dims))
