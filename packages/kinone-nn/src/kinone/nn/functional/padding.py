"""pad: PyTorch's F.pad (modes constant, reflect, replicate, circular) as one Function.

Every mode works axis by axis from strided slices: the forward concatenates the borders it
reads, and the backward adds each border's gradient back onto the slice it was read from (a
reversed slice for reflect, a sum for replicate), so there is no scatter with atomics and the
result is deterministic on the GPU too.
"""

from __future__ import annotations

import numpy as np

from kinone.autograd import Function, Tensor
from kinone.autograd.backend import get_array_module

MODES = ("constant", "reflect", "replicate", "circular")


class Pad(Function):
    """pad = (left_last, right_last, left_before_last, ...): along each padded axis of length L,
    y = [border_left, x, border_right] with border x's neighbours mirrored (reflect: x[b], ..., x[1]),
    repeated (replicate: x[0]) or wrapped (circular: x[L-b:]), or the constant `value`;
    a negative constant pad crops.  dL/dx = g's centre plus each border's g added back where
    the border was read from (reflect: reversed onto x[1:b+1], replicate: summed onto x[0],
    circular: onto x[L-b:]); constant borders get no gradient.

    Attributes (all given, by pad): pad (PyTorch's flat tuple), mode, value.
    """

    @staticmethod
    def forward(ctx, x, *, pad, mode, value):
        widths = _widths(x.shape, pad, mode)
        ctx.widths = widths
        if mode == "constant":
            return _pad_constant(x, widths, value)
        for axis, before, after in widths:
            x = _pad_axis(x, axis, before, after, mode)
        return x

    @staticmethod
    def backward(ctx, grad):
        mode = ctx.attrs["mode"]
        if mode == "constant":
            return _crop_constant_grad(grad, ctx.widths, ctx.input_shapes[0])
        for axis, before, after in reversed(ctx.widths):
            grad = _unpad_axis_grad(grad, axis, before, after, mode)
        return grad


def _widths(shape, pad, mode) -> list[tuple[int, int, int]]:
    """(axis, before, after) per padded axis, the last axis first (PyTorch's order of `pad`)."""
    widths = [(len(shape) - 1 - k, pad[2 * k], pad[2 * k + 1]) for k in range(len(pad) // 2)]
    for axis, before, after in widths:
        length = shape[axis]
        if mode == "constant":
            if length + before + after < 0:
                raise ValueError(
                    f"pad: input of shape {shape} padded by ({before}, {after}) at dim {axis} has negative size"
                )
            continue
        if before < 0 or after < 0:
            raise ValueError(f"pad: mode {mode!r} needs non-negative padding, got ({before}, {after}) at dim {axis}")
        limit = length - 1 if mode == "reflect" else length
        if (mode == "replicate" and length == 0) or (mode != "replicate" and max(before, after) > limit):
            relation = "less than" if mode == "reflect" else "at most"
            raise ValueError(
                f"pad: mode {mode!r}: padding size should be {relation} the corresponding input dimension, but got "
                f"padding ({before}, {after}) at dimension {axis} of input {tuple(shape)}"
            )
    return widths


def _along(axis, index) -> tuple:
    return (slice(None),) * axis + (index,)


def _pad_constant(x, widths, value):
    shape = list(x.shape)
    source, target = [slice(None)] * x.ndim, [slice(None)] * x.ndim
    for axis, before, after in widths:
        length = x.shape[axis]
        start, stop = max(-before, 0), length - max(-after, 0)
        source[axis] = slice(start, max(stop, start))
        target[axis] = slice(max(before, 0), max(before, 0) + max(stop - start, 0))
        shape[axis] = length + before + after
    out = get_array_module(x).full(shape, value, dtype=x.dtype)
    out[tuple(target)] = x[tuple(source)]
    return out


def _crop_constant_grad(grad, widths, input_shape):
    source, target = [slice(None)] * grad.ndim, [slice(None)] * grad.ndim
    cropped = False
    for axis, before, after in widths:
        length = input_shape[axis]
        start, stop = max(-before, 0), length - max(-after, 0)
        target[axis] = slice(start, max(stop, start))
        source[axis] = slice(max(before, 0), max(before, 0) + max(stop - start, 0))
        cropped = cropped or before < 0 or after < 0
    if not cropped:
        return grad[tuple(source)]
    grad_x = get_array_module(grad).zeros(input_shape, dtype=grad.dtype)
    grad_x[tuple(target)] = grad[tuple(source)]
    return grad_x


def _pad_axis(x, axis, before, after, mode):
    """x padded along one axis by a non-constant mode."""
    length = x.shape[axis]
    if mode == "reflect":
        reverse = _along(axis, slice(None, None, -1))
        left = x[_along(axis, slice(1, before + 1))][reverse]
        right = x[_along(axis, slice(length - 1 - after, length - 1))][reverse]
    elif mode == "replicate":
        before_shape, after_shape = list(x.shape), list(x.shape)
        before_shape[axis], after_shape[axis] = before, after
        left = np.broadcast_to(x[_along(axis, slice(0, 1))], before_shape)
        right = np.broadcast_to(x[_along(axis, slice(length - 1, length))], after_shape)
    else:  # circular
        left, right = x[_along(axis, slice(length - before, length))], x[_along(axis, slice(0, after))]
    return get_array_module(x).concatenate([left, x, right], axis=axis)


def _unpad_axis_grad(grad, axis, before, after, mode):
    """The gradient with respect to the input of _pad_axis."""
    length = grad.shape[axis] - before - after
    grad_x = grad[_along(axis, slice(before, before + length))].copy()
    left, right = grad[_along(axis, slice(0, before))], grad[_along(axis, slice(before + length, None))]
    if mode == "reflect":
        grad_x[_along(axis, slice(1, before + 1))] += left[_along(axis, slice(None, None, -1))]
        grad_x[_along(axis, slice(length - 1 - after, length - 1))] += right[_along(axis, slice(None, None, -1))]
    elif mode == "replicate":
        grad_x[_along(axis, slice(0, 1))] += left.sum(axis=axis, keepdims=True)
        grad_x[_along(axis, slice(length - 1, length))] += right.sum(axis=axis, keepdims=True)
    else:  # circular
        grad_x[_along(axis, slice(length - before, length))] += left
        grad_x[_along(axis, slice(0, after))] += right
    return grad_x


def pad(input: Tensor, pad, mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad the last len(pad) // 2 dims of input: pad = (left, right) for the last dim, then
    (top, bottom) for the one before, and so on, as PyTorch. mode is "constant" (with `value`,
    default 0; negative pads crop), "reflect" (mirror without repeating the edge), "replicate"
    (repeat the edge) or "circular" (wrap around)."""
    if not isinstance(pad, (tuple, list)) or not all(
        isinstance(p, (int, np.integer)) and not isinstance(p, bool) for p in pad
    ):
        raise TypeError(f"pad: pad must be a tuple of ints, got {pad!r}")
    if len(pad) % 2:
        raise ValueError(f"pad: padding length must be divisible by 2, got pad={tuple(pad)}")
    if len(pad) // 2 > input.ndim:
        raise ValueError(
            f"pad: padding length too large: pad={tuple(pad)} pads {len(pad) // 2} dims of a {input.ndim}-D input"
        )
    if mode not in MODES:
        raise ValueError(f"pad: mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode != "constant" and value is not None and value != 0:
        raise ValueError(f'pad: padding mode "{mode}" doesn\'t take in value argument')
    return Pad.apply(input, pad=tuple(int(p) for p in pad), mode=mode, value=0.0 if value is None else float(value))
