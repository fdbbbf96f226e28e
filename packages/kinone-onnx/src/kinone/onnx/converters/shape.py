"""Shape Functions: reshape, permute, expand, concatenation, stacking and basic indexing.

A shape written into the graph must hold at every input size when some dims are dynamic
(`Call.output_dynamic`): reshape writes a dynamic dim as 0 ("copy the input's dim here") where
it is the input's dim, or as -1 (at most one, inferred), or uses Flatten; expand writes 1 where
the input's own dynamic dim is kept (broadcast keeps it); slices keep Python's relative
indices (negative, open ends), which ONNX Slice reads the same way.
"""

from __future__ import annotations

import math

import numpy as np

from kinone.autograd.ops.indexing import GetItem
from kinone.autograd.ops.joining import Cat, Stack
from kinone.autograd.ops.shape import Expand, Permute, Reshape

from ..graph import Call, GraphBuilder
from ..registry import converter

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _is_flatten(in_shape, out_shape, axis: int) -> bool:
    return tuple(out_shape) == (math.prod(in_shape[:axis]), math.prod(in_shape[axis:]))


@converter(Reshape, shape_attributes=True)
def reshape(g: GraphBuilder, call: Call):
    (x,), (in_shape,), (in_dynamic,) = call.inputs, call.input_shapes, call.input_dynamic
    (probe_in,), out_shape, probe_out = call.probe_input_shapes, call.output_shape, call.probe_output_shape
    if any(call.output_dynamic) and len(out_shape) == 2:
        for axis in range(1, len(in_shape)):
            if _is_flatten(in_shape, out_shape, axis) and _is_flatten(probe_in, probe_out, axis):
                g.node("Flatten", [x], call.output, axis=axis)
                return
    target, inferred = [], None
    for i, (size, dynamic) in enumerate(zip(out_shape, call.output_dynamic)):
        if not dynamic:
            target.append(size)
        elif i < len(in_shape) and in_dynamic[i] and in_shape[i] == size and probe_in[i] == probe_out[i]:
            target.append(0)  # the input's own dim i, whatever its size
        elif inferred is None:
            inferred = i
            target.append(-1)
        else:
            raise call.error(
                f"reshape from {in_shape} to {out_shape} (from {probe_in} to {probe_out} at another input size) "
                "has several output dims that follow the input's size in new ways; ONNX Reshape can infer only one. "
                "Export with dynamic_batch=False (and dynamic_size=False)"
            )
    g.node("Reshape", [x, g.int64s(target)], call.output)


@converter(Permute)
def permute(g: GraphBuilder, call: Call):
    g.node("Transpose", call.inputs, call.output, perm=[int(d) for d in call.attrs["dims"]])


@converter(Expand, shape_attributes=True)
def expand(g: GraphBuilder, call: Call):
    """ONNX Expand broadcasts the input against the shape, so a 1 keeps the input's dim."""
    (in_shape,), (in_dynamic,) = call.input_shapes, call.input_dynamic
    target, offset = list(call.output_shape), len(call.output_shape) - len(in_shape)
    for i, dynamic in enumerate(call.output_dynamic):
        if not dynamic:
            continue
        j = i - offset
        if j < 0 or not in_dynamic[j] or in_shape[j] != target[i]:
            raise call.error(
                f"expand from {in_shape} to {tuple(call.output_shape)} takes dim {i} from the input's size, not from "
                "the expanded tensor: the graph would freeze it. Export with dynamic_batch=False (and dynamic_size=False)"
            )
        target[i] = 1
    g.node("Expand", [call.inputs[0], g.int64s(target)], call.output)


@converter(Cat)
def cat(g: GraphBuilder, call: Call):
    g.node("Concat", call.inputs, call.output, axis=int(call.attrs.get("dim", 0)) % len(call.input_shapes[0]))


@converter(Stack)
def stack(g: GraphBuilder, call: Call):
    axis = int(call.attrs.get("dim", 0)) % (len(call.input_shapes[0]) + 1)
    g.node("Concat", [g.unsqueeze(x, [axis]) for x in call.inputs], call.output, axis=axis)


@converter(GetItem)
def getitem(g: GraphBuilder, call: Call):
    """Basic indexing (ints, slices, None, ...) as one Slice, then Squeeze for the ints and
    Unsqueeze for the Nones. Integer- and boolean-array indices are not supported."""
    (x,), (shape,) = call.inputs, call.input_shapes
    parts = call.attrs["index"] if isinstance(call.attrs["index"], tuple) else (call.attrs["index"],)
    if any(
        isinstance(p, np.ndarray) or not (p is None or p is Ellipsis or isinstance(p, (int, np.integer, slice)))
        for p in parts
    ):
        raise call.error(f"only basic indexing (ints, slices, None, ...) can be exported, got index {parts!r}")
    if Ellipsis in parts:
        at = parts.index(Ellipsis)
        used = sum(p is not None for p in parts) - 1
        parts = parts[:at] + (slice(None),) * (len(shape) - used) + parts[at + 1 :]
    parts = parts + (slice(None),) * (len(shape) - sum(p is not None for p in parts))
    starts, ends, axes, steps, squeezed, new_axes = [], [], [], [], [], []
    dim = out_pos = 0
    for part in parts:
        if part is None:
            new_axes.append(out_pos)
            out_pos += 1
            continue
        if isinstance(part, slice):
            if part != slice(None):
                # Python's own relative bounds (negative, open ends), as ONNX Slice reads them.
                step = 1 if part.step is None else int(part.step)
                start = part.start if part.start is not None else (0 if step > 0 else -1)
                stop = part.stop if part.stop is not None else (_INT64_MAX if step > 0 else _INT64_MIN)
                starts.append(int(start)), ends.append(int(stop)), axes.append(dim), steps.append(step)
            out_pos += 1
        else:
            index = int(part)
            (
                starts.append(index),
                ends.append(_INT64_MAX if index == -1 else index + 1),
                axes.append(dim),
                steps.append(1),
            )
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
