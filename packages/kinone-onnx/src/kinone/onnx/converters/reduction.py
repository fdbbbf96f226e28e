"""Reductions and softmax. Sum/Mean/Amax/Amin/LogSumExp map to ONNX Reduce* operators,
Softmax/LogSoftmax to the operators of the same name over one axis, and Var is written out:
Σ (x - mean)² / (count - correction), with the count read from the shapes at run time."""

from __future__ import annotations

from kinone.autograd.ops.reduction import Amax, Amin, LogSumExp, Mean, Sum, Var, normalize_dims
from kinone.autograd.ops.softmax import LogSoftmax, Softmax

from ..graph import Call, GraphBuilder, tensor_type
from ..registry import converter

_REDUCE = {Sum: "ReduceSum", Mean: "ReduceMean", Amax: "ReduceMax", Amin: "ReduceMin", LogSumExp: "ReduceLogSumExp"}


def _axes(call: Call):
    return normalize_dims(call.function.__name__.lower(), call.attrs.get("dim"), len(call.input_shapes[0]))


@converter(*_REDUCE)
def reduce(g: GraphBuilder, call: Call):
    axes, keepdim = _axes(call), bool(call.attrs.get("keepdim", False))
    g.reduce(_REDUCE[call.function], call.inputs[0], axes, keepdim, call.output)


@converter(Var)
def var(g: GraphBuilder, call: Call):
    (x,) = call.inputs
    axes, keepdim = _axes(call), bool(call.attrs.get("keepdim", False))
    dtype = call.dtype
    mean = g.reduce("ReduceMean", x, axes, True)
    centered = g.node("Sub", [x, mean])
    total = g.reduce("ReduceSum", g.node("Mul", [centered, centered]), axes, keepdim)
    # The count of reduced elements, from the shapes at run time (the batch may be reduced).
    count = g.node(
        "Div",
        [
            g.node("Cast", [g.node("Size", [x])], to=tensor_type(dtype)),
            g.node("Cast", [g.node("Size", [mean])], to=tensor_type(dtype)),
        ],
    )
    denominator = g.node("Sub", [count, g.constant(call.attrs.get("correction", 1), dtype, "correction")])
    g.node("Div", [total, denominator], call.output)


@converter(Softmax, LogSoftmax)
def softmax(g: GraphBuilder, call: Call):
    """From opset 13 both normalise over exactly one axis, as Kinone's do."""
    ndim = len(call.input_shapes[0])
    axes = normalize_dims("softmax", call.attrs["dim"], ndim)
    axis = axes[0] if axes else 0
    g.node(call.function.__name__, call.inputs, call.output, axis=axis)
