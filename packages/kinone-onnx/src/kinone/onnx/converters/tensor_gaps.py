"""The triangles (`tril`, `triu`) and `x[index] = value` (SetItemInPlace).

tril/triu are ONNX Trilu from opset 14; at opset 13 a Where against a constant mask of the last
two dims (which must then have a fixed size).

`y[index] = v` has no ONNX operator of its own. It is written as ScatterND over the indexed
dims: y is transposed so that the dims the index restricts come first and the dims it takes
whole (`:`, the batch dim of a dynamic export among them) come last, flattened to
(positions of the restricted dims, the rest); v, broadcast to the indexed region and laid out
the same way, is scattered at the flat positions the index picks (constants: the restricted
dims have fixed sizes), and the result is reshaped and transposed back. Basic indices (ints,
slices, Ellipsis) are supported; None and integer or boolean arrays are refused by name.
"""

from __future__ import annotations

import numpy as np

from kinone.autograd.ops.inplace import SetItemInPlace
from kinone.autograd.ops.triangular import Tril, Triu

from ..graph import Call, GraphBuilder, tensor_type
from ..registry import converter

_INT64_MAX = 2**63 - 1


@converter(Tril, Triu)
def triangle(g: GraphBuilder, call: Call):
    (x,), diagonal, upper = call.inputs, int(call.attrs.get("diagonal", 0)), call.function is Triu
    if g.opset >= 14:
        g.node("Trilu", [x, g.constant(diagonal, np.int64, "diagonal")], call.output, upper=int(upper))
        return
    (shape,), (dynamic,) = call.input_shapes, call.input_dynamic
    if any(dynamic[-2:]):
        raise call.error(
            f"{'triu' if upper else 'tril'} of a matrix whose size changes with the input needs opset 14 "
            "(Trilu); export with opset=14 or later, or with dynamic_batch=False"
        )
    rows, cols = shape[-2:]
    offsets = np.arange(cols)[None, :] - np.arange(rows)[:, None]
    keep = offsets >= diagonal if upper else offsets <= diagonal
    zero = g.constant(np.zeros((), dtype=call.dtype), hint="zero")
    g.node("Where", [g.constant(keep, hint="triangle"), x, zero], call.output)


def _basic_parts(call: Call, rank: int) -> list:
    """The index as one int or slice per dim of y (Ellipsis expanded, missing dims taken whole)."""
    index = call.attrs["index"]
    parts = index if isinstance(index, tuple) else (index,)
    for part in parts:
        if part is None or not (part is Ellipsis or isinstance(part, (int, np.integer, slice))):
            raise call.error(f"only ints, slices and Ellipsis can be exported in x[index] = value, got index {parts!r}")
    if Ellipsis in parts:
        at = parts.index(Ellipsis)
        parts = parts[:at] + (slice(None),) * (rank - len(parts) + 1) + parts[at + 1 :]
    return list(parts) + [slice(None)] * (rank - len(parts))


@converter(SetItemInPlace)
def setitem(g: GraphBuilder, call: Call):
    (y, value), (shape, value_shape) = call.inputs, call.input_shapes
    rank, dynamic = len(shape), call.input_dynamic[0]
    parts = _basic_parts(call, rank)
    value = g.node("Cast", [value], to=tensor_type(call.dtype))
    restricted = [d for d, part in enumerate(parts) if part != slice(None)]
    if not restricted:  # y[...] = v: v broadcast over all of y
        g.node("Expand", [value, g.node("Shape", [y])], call.output)
        return
    if any(dynamic[d] for d in restricted):
        raise call.error(
            f"x[index] = value restricts a dim whose size changes with the input (index {parts!r} "
            f"on shape {shape}); export with dynamic_batch=False (and dynamic_size=False)"
        )
    whole = [d for d in range(rank) if d not in restricted]
    order = restricted + whole
    picked = [np.arange(shape[d])[parts[d]] for d in restricted]  # per restricted dim, its positions (0-d for an int)
    counts = [p.size for p in picked]
    grid = np.meshgrid(*picked, indexing="ij")
    positions = np.ravel_multi_index(grid, [shape[d] for d in restricted]).reshape(-1, 1)
    # v as numpy broadcasts it into y[index]: its dims right-aligned on the region's (the int dims dropped),
    # then the int dims put back as 1s, then laid out in `order` and expanded.
    region_rank = rank - sum(not isinstance(parts[d], slice) for d in range(rank))
    if len(value_shape) > region_rank:  # extra leading 1s, which numpy allows
        value = g.node("Reshape", [value, g.int64s(value_shape[len(value_shape) - region_rank :])])
    elif len(value_shape) < region_rank:
        value = g.unsqueeze(value, list(range(region_rank - len(value_shape))))
    int_dims = [d for d in range(rank) if not isinstance(parts[d], slice)]
    if int_dims:
        value = g.unsqueeze(value, int_dims)
    transposed = order != list(range(rank))
    y_t = g.node("Transpose", [y], perm=order) if transposed else y
    value = g.node("Transpose", [value], perm=order) if transposed else value
    shape_t = g.node("Shape", [y_t])
    whole_shape = g.node("Slice", [shape_t, g.int64s([len(restricted)], "starts"), g.int64s([_INT64_MAX], "ends")])
    region = g.node("Concat", [g.int64s(counts, "region"), whole_shape], axis=0)
    updates = g.node("Flatten", [g.node("Expand", [value, region])], axis=len(restricted))
    flat = g.node("Flatten", [y_t], axis=len(restricted))
    scattered = g.node("ScatterND", [flat, g.constant(positions.astype(np.int64), hint="positions"), updates])
    if not transposed:
        g.node("Reshape", [scattered, shape_t], call.output)
        return
    inverse = [int(i) for i in np.argsort(order)]
    g.node("Transpose", [g.node("Reshape", [scattered, shape_t])], call.output, perm=inverse)
