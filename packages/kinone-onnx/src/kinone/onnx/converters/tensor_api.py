"""Converters of the Tensor-API Functions (issue 16): trigonometric and step functions,
reciprocal/rsqrt, index ops (ArgMax/ArgMin/Argsort/TopKIndices), gather/scatter, prod, cumsum,
norm, flip, roll, repeat and clone.

Most are one ONNX operator. Written out: trunc (sign(x)·floor(|x|), ONNX has no Trunc), rsqrt
(1/sqrt), round to decimals (round(x·10^d)/10^d), the p-norms other than 1 and 2, roll (two
slices joined). Argsort and TopKIndices are TopK's second output (ONNX TopK puts the lower
index first among equal elements, as Kinone's stable sort does).
"""

from __future__ import annotations

import numpy as np

from kinone.autograd.ops.elementwise import Clone
from kinone.autograd.ops.gather_scatter import Gather, Scatter
from kinone.autograd.ops.reduction import Cumsum, Norm, Prod, normalize_dims
from kinone.autograd.ops.shape import Flip, Repeat, Roll
from kinone.autograd.ops.sorting import ArgMax, ArgMin, Argsort, TopKIndices
from kinone.autograd.ops.unary_math import (
    Acos,
    Asin,
    Atan,
    Ceil,
    Cos,
    Cosh,
    Floor,
    Reciprocal,
    Round,
    Rsqrt,
    Sign,
    Sin,
    Sinh,
    Tan,
    Trunc,
)
from onnx import helper

from ..graph import Call, GraphBuilder, tensor_type
from ..registry import converter

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_SAME_NAME = {
    Sin: "Sin",
    Cos: "Cos",
    Tan: "Tan",
    Asin: "Asin",
    Acos: "Acos",
    Atan: "Atan",
    Sinh: "Sinh",
    Cosh: "Cosh",
    Reciprocal: "Reciprocal",
    Sign: "Sign",
}
_FLOAT_ONLY = {Floor: "Floor", Ceil: "Ceil"}


def _is_floating(call: Call) -> bool:
    return np.dtype(call.dtype).kind == "f"


def _axis(call: Call, dim) -> int:
    ndim = len(call.input_shapes[0])
    (axis,) = normalize_dims(call.function.__name__.lower(), dim, ndim) or (0,)
    return axis


@converter(*_SAME_NAME)
def unary(g: GraphBuilder, call: Call):
    g.node(_SAME_NAME[call.function], call.inputs, call.output)


@converter(*_FLOAT_ONLY)
def rounding(g: GraphBuilder, call: Call):
    """Floor/Ceil of integers is the integers themselves (Kinone copies them)."""
    op = _FLOAT_ONLY[call.function] if _is_floating(call) else "Identity"
    g.node(op, call.inputs, call.output)


@converter(Trunc)
def trunc(g: GraphBuilder, call: Call):
    (x,) = call.inputs
    if not _is_floating(call):
        g.node("Identity", [x], call.output)
        return
    g.node("Mul", [g.node("Sign", [x]), g.node("Floor", [g.node("Abs", [x])])], call.output)


@converter(Round)
def round_(g: GraphBuilder, call: Call):
    """ONNX Round rounds halves to even, as Kinone and PyTorch do."""
    (x,) = call.inputs
    decimals = call.attrs.get("decimals", 0)
    if not _is_floating(call):
        g.node("Identity", [x], call.output)
    elif decimals == 0:
        g.node("Round", [x], call.output)
    else:
        scale = g.constant(10.0**decimals, call.dtype, "scale")
        g.node("Div", [g.node("Round", [g.node("Mul", [x, scale])]), scale], call.output)


@converter(Rsqrt)
def rsqrt(g: GraphBuilder, call: Call):
    g.node("Reciprocal", [g.node("Sqrt", call.inputs)], call.output)


@converter(Clone)
def clone(g: GraphBuilder, call: Call):
    g.node("Identity", call.inputs, call.output)


# ---------------------------------------------------------------------------- index ops
@converter(ArgMax, ArgMin)
def arg_extremum(g: GraphBuilder, call: Call):
    """ONNX ArgMax/ArgMin with select_last_index=0: the first of ties, as Kinone."""
    (x,), op = call.inputs, call.function.__name__
    dim, keepdim = call.attrs.get("dim"), int(bool(call.attrs.get("keepdim", False)))
    ndim = len(call.input_shapes[0])
    if dim is not None and ndim:
        g.node(op, [x], call.output, axis=_axis(call, dim), keepdims=keepdim, select_last_index=0)
        return
    flat = g.node(op, [g.node("Reshape", [x, g.int64s([-1])])], axis=0, keepdims=0, select_last_index=0)
    g.node("Reshape", [flat, g.int64s([1] * ndim if keepdim else [])], call.output)


def _topk(g: GraphBuilder, call: Call, x: str, k: str, axis: int, largest: bool) -> None:
    """TopK's indices (its second output) as `call.output`; the values are not used."""
    values = g.fresh(f"{g.scope or 'model'}/TopK_values:0")
    # GraphBuilder.node writes one output; TopK has two, so the node is made here.
    g.nodes.append(
        helper.make_node(
            "TopK", [x, k], [values, call.output], name=g._node_name("TopK"), axis=axis, largest=int(largest), sorted=1
        )
    )


@converter(Argsort)
def argsort(g: GraphBuilder, call: Call):
    """A TopK of all the dim's elements (its size read at run time: it may be dynamic)."""
    (x,) = call.inputs
    if not call.input_shapes[0]:  # a 0-d tensor sorts to index 0
        g.node("Identity", [g.constant(np.int64(0), hint="index")], call.output)
        return
    axis = _axis(call, call.attrs.get("dim", -1))
    size = g.node("Gather", [g.node("Shape", [x]), g.int64s([axis], "axis")], axis=0)
    _topk(g, call, x, size, axis, bool(call.attrs.get("descending", False)))


@converter(TopKIndices)
def topk(g: GraphBuilder, call: Call):
    (x,) = call.inputs
    axis = _axis(call, call.attrs.get("dim", -1))
    _topk(g, call, x, g.int64s([call.attrs["k"]], "k"), axis, bool(call.attrs.get("largest", True)))


@converter(Gather)
def gather(g: GraphBuilder, call: Call):
    """GatherElements: out[i][j] = x[index[i][j]][j] along the axis, the index's shape."""
    x, index = call.inputs
    g.node("GatherElements", [x, index], call.output, axis=_axis(call, call.attrs["dim"]))


@converter(Scatter)
def scatter(g: GraphBuilder, call: Call):
    """ScatterElements; a number or a larger src is first cut (or expanded) to the index's shape."""
    x, index, src = call.inputs
    _, index_shape, src_shape = call.input_shapes
    if tuple(src_shape) != tuple(index_shape):
        if len(src_shape) == 0:
            src = g.node("Expand", [src, g.node("Shape", [index])])
        else:
            src = g.node("Slice", [src, g.int64s([0] * len(index_shape), "starts"), g.node("Shape", [index])])
    g.node("ScatterElements", [x, index, src], call.output, axis=_axis(call, call.attrs["dim"]))


# ---------------------------------------------------------------------------- reductions
@converter(Prod)
def prod(g: GraphBuilder, call: Call):
    (x,) = call.inputs
    axes = normalize_dims("prod", call.attrs.get("dim"), len(call.input_shapes[0]))
    if not _is_floating(call):  # integers multiply in int64, as in Kinone and PyTorch
        x = g.node("Cast", [x], to=tensor_type(np.int64))
    g.reduce("ReduceProd", x, axes, bool(call.attrs.get("keepdim", False)), call.output)


@converter(Cumsum)
def cumsum(g: GraphBuilder, call: Call):
    (x,) = call.inputs
    if not call.input_shapes[0]:
        g.node("Identity", [x], call.output)
        return
    if not _is_floating(call):  # integers add up in int64, as in Kinone and PyTorch
        x = g.node("Cast", [x], to=tensor_type(np.int64))
    axis = g.constant(np.int64(_axis(call, call.attrs["dim"])), hint="axis")
    g.node("CumSum", [x, axis], call.output)


@converter(Norm)
def norm(g: GraphBuilder, call: Call):
    (x,) = call.inputs
    p, keepdim = call.attrs.get("p", 2.0), bool(call.attrs.get("keepdim", False))
    axes = normalize_dims("norm", call.attrs.get("dim"), len(call.input_shapes[0]))
    if p == 2:
        g.reduce("ReduceL2", x, axes, keepdim, call.output)
    elif p == 1:
        g.reduce("ReduceL1", x, axes, keepdim, call.output)
    elif p in (np.inf, -np.inf):
        g.reduce("ReduceMax" if p > 0 else "ReduceMin", g.node("Abs", [x]), axes, keepdim, call.output)
    elif p == 0:
        nonzero = g.node(
            "Cast",
            [g.node("Not", [g.node("Equal", [x, g.constant(0, call.dtype, "zero")])])],
            to=tensor_type(call.dtype),
        )
        g.reduce("ReduceSum", nonzero, axes, keepdim, call.output)
    else:
        powered = g.node("Pow", [g.node("Abs", [x]), g.constant(p, call.dtype, "p")])
        total = g.reduce("ReduceSum", powered, axes, keepdim)
        g.node("Pow", [total, g.constant(1 / p, call.dtype, "inv_p")], call.output)


# ---------------------------------------------------------------------------- shape
@converter(Flip)
def flip(g: GraphBuilder, call: Call):
    """A Slice with step -1 from the last element past the first, on each flipped axis."""
    dims = [int(d) for d in call.attrs["dims"]]
    count = len(dims)
    g.node(
        "Slice",
        [
            call.inputs[0],
            g.int64s([-1] * count, "starts"),
            g.int64s([_INT64_MIN] * count, "ends"),
            g.int64s(dims, "axes"),
            g.int64s([-1] * count, "steps"),
        ],
        call.output,
    )


def _roll_axis(g: GraphBuilder, call: Call, x: str, shift: int, axis: int, size: int, probe_size: int) -> str:
    """x rolled by `shift` along `axis`: x[-s:] joined to x[:-s], s = shift mod size (the same at
    the probe's size, or the graph would not hold)."""
    s = shift % size if size else 0
    if size and probe_size and shift % probe_size != s:
        raise call.error(
            f"roll by {shift} along a dim of size {size} ({probe_size} at another input size) "
            "is not one slice position at every size; export with dynamic_batch=False"
        )
    if s == 0:
        return x
    tail = g.node("Slice", [x, g.int64s([-s], "starts"), g.int64s([_INT64_MAX], "ends"), g.int64s([axis], "axes")])
    head = g.node("Slice", [x, g.int64s([0], "starts"), g.int64s([-s], "ends"), g.int64s([axis], "axes")])
    return g.node("Concat", [tail, head], axis=axis)


@converter(Roll)
def roll(g: GraphBuilder, call: Call):
    (x,), shape, probe = call.inputs, call.input_shapes[0], call.probe_input_shapes[0]
    shifts, dims = call.attrs["shifts"], call.attrs.get("dims")
    if dims is None:  # over the flattened tensor, then back to the input's shape (read at run time)
        flat = g.node("Reshape", [x, g.int64s([-1])])
        rolled = _roll_axis(g, call, flat, shifts, 0, int(np.prod(shape)), int(np.prod(probe)))
        g.node("Reshape", [rolled, g.node("Shape", [x])], call.output)
        return
    for shift, axis in zip(shifts, dims):
        x = _roll_axis(g, call, x, shift, axis, shape[axis], probe[axis])
    g.node("Identity", [x], call.output)


@converter(Repeat)
def repeat(g: GraphBuilder, call: Call):
    """Tile, after Unsqueeze adds the leading dims that `repeats` has beyond the input's."""
    (x,), repeats = call.inputs, [int(r) for r in call.attrs["repeats"]]
    added = len(repeats) - len(call.input_shapes[0])
    if added:
        x = g.unsqueeze(x, list(range(added)))
    g.node("Tile", [x, g.int64s(repeats, "repeats")], call.output)
