"""Shape Functions: reshape, permute, expand, concatenation, stacking and basic indexing.

Under `dynamic_batch` a shape written into the graph must not hold the example's batch size:
reshape writes -1 where the batch dim lands (or uses Flatten), expand writes 1 (broadcast
keeps the input's dim), and a slice over the batch dim that keeps all of it is not written.
"""

from __future__ import annotations

import math

import numpy as np

from kinone.autograd.ops.indexing import GetItem
from kinone.autograd.ops.joining import Cat, Stack
from kinone.autograd.ops.shape import Expand, Permute, Reshape

from ..graph import Call, GraphBuilder
from ..registry import NOT_BATCHED, converter

_INT64_MIN = -(2**63)


@converter(Reshape)
def reshape(g: GraphBuilder, call: Call):
    (x,), (in_shape,), (axis,) = call.inputs, call.input_shapes, call.input_batch_axes
    out_shape = tuple(call.output_shape)
    if axis is None or g.batch_size is None:
        g.node("Reshape", [x, g.int64s(out_shape)], call.output)
        return None
    if axis == 0 and len(in_shape) >= 2 and out_shape == (in_shape[0], math.prod(in_shape[1:])):
        g.node("Flatten", [x], call.output, axis=1)
        return 0
    # The batch dim must come out whole, as one output dim p, with the same elements before
    # and after it; then p is written -1 and the graph works at any batch size.
    before, after = math.prod(in_shape[:axis]), math.prod(in_shape[axis + 1 :])
    for p, size in enumerate(out_shape):
        if size == in_shape[axis] and math.prod(out_shape[:p]) == before and math.prod(out_shape[p + 1 :]) == after:
            target = [-1 if i == p else d for i, d in enumerate(out_shape)]
            g.node("Reshape", [x, g.int64s(target)], call.output)
            return p
    raise call.error(
        f"reshape from {in_shape} to {out_shape} merges or splits the batch dim (axis {axis}), so the graph "
        "could not run at another batch size; export with dynamic_batch=False"
    )


@converter(Permute)
def permute(g: GraphBuilder, call: Call):
    dims = [int(d) for d in call.attrs["dims"]]
    g.node("Transpose", call.inputs, call.output, perm=dims)
    axis = call.input_batch_axes[0]
    return NOT_BATCHED if axis is None else dims.index(axis)


@converter(Expand)
def expand(g: GraphBuilder, call: Call):
    """ONNX Expand broadcasts the input against the shape, so a 1 keeps the input's dim."""
    out_shape = list(call.output_shape)
    axis, offset = call.input_batch_axes[0], len(out_shape) - len(call.input_shapes[0])
    if axis is not None and g.batch_size is not None:
        out_shape[axis + offset] = 1
    g.node("Expand", [call.inputs[0], g.int64s(out_shape)], call.output)
    return None if axis is None else axis + offset


@converter(Cat)
def cat(g: GraphBuilder, call: Call):
    axis = int(call.attrs.get("dim", 0)) % len(call.input_shapes[0])
    g.node("Concat", call.inputs, call.output, axis=axis)
    if axis in call.input_batch_axes:
        return NOT_BATCHED  # joined along the batch: the sizes add up
    return None


@converter(Stack)
def stack(g: GraphBuilder, call: Call):
    axis = int(call.attrs.get("dim", 0)) % (len(call.input_shapes[0]) + 1)
    g.node("Concat", [g.unsqueeze(x, [axis]) for x in call.inputs], call.output, axis=axis)
    batch = next((a for a in call.input_batch_axes if a is not None), None)
    return NOT_BATCHED if batch is None else batch + (batch >= axis)


@converter(GetItem)
def getitem(g: GraphBuilder, call: Call):
    """Basic indexing (ints, slices, None, ...) as one Slice, then Squeeze for the ints and
    Unsqueeze for the Nones. Integer- and boolean-array indices are not supported."""
    (x,), (shape,), (batch,) = call.inputs, call.input_shapes, call.input_batch_axes
    parts = call.attrs["index"] if isinstance(call.attrs["index"], tuple) else (call.attrs["index"],)
    if any(isinstance(p, np.ndarray) or not (p is None or p is Ellipsis or isinstance(p, (int, np.integer, slice))) for p in parts):
        raise call.error(f"only basic indexing (ints, slices, None, ...) can be exported, got index {parts!r}")
    if Ellipsis in parts:
        at = parts.index(Ellipsis)
        used = sum(p is not None for p in parts) - 1
        parts = parts[:at] + (slice(None),) * (len(shape) - used) + parts[at + 1 :]
    parts = parts + (slice(None),) * (len(shape) - sum(p is not None for p in parts))
    starts, ends, axes, steps, squeezed, new_axes = [], [], [], [], [], []
    dim = out_pos = 0
    out_batch = NOT_BATCHED
    for part in parts:
        if part is None:
            new_axes.append(out_pos)
            out_pos += 1
            continue
        size = shape[dim]
        if isinstance(part, slice):
            if part != slice(None):
                start, stop, step = part.indices(size)
                if step < 0 and stop < 0:
                    stop = _INT64_MIN  # "before the first element", which -1 would not mean
                starts.append(start), ends.append(stop), axes.append(dim), steps.append(step)
            elif dim == batch:
                out_batch = out_pos
            out_pos += 1
        else:
            index = int(part) % size
            starts.append(index), ends.append(index + 1), axes.append(dim), steps.append(1)
            squeezed.append(dim)
        dim += 1
    ops = []  # each op(value, output name or None) -> its output; the last writes call.output
    if axes:
        bounds = [g.int64s(starts, "starts"), g.int64s(ends, "ends"), g.int64s(axes, "axes"), g.int64s(steps, "steps")]
        ops.append(lambda value, out: g.node("Slice", [value, *bounds], out))
    if squeezed:
        ops.append(lambda value, out: g.squeeze(value, squeezed, out))
    if new_axes:
        ops.append(lambda value, out: g.unsqueeze(value, new_axes, out))
    if not ops:  # x[...] or x[:]: the same tensor
        ops.append(lambda value, out: g.node("Identity", [value], out))
    value = x
    for i, op in enumerate(ops):
        value = op(value, call.output if i == len(ops) - 1 else None)
    return out_batch
