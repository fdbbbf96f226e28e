"""Binary arithmetic, matrix product and elementwise selection: each one ONNX operator with
the same (multidirectional, NumPy-style) broadcasting."""

from __future__ import annotations

from kinone.autograd.ops.arithmetic import Add, Div, Mul, Neg, Pow, Sub
from kinone.autograd.ops.joining import Maximum, Minimum, Where
from kinone.autograd.ops.matmul import MatMul

from ..graph import Call, GraphBuilder
from ..registry import converter

_SAME_NAME = {
    Add: "Add",
    Sub: "Sub",
    Mul: "Mul",
    Div: "Div",
    Pow: "Pow",
    Neg: "Neg",
    Maximum: "Max",
    Minimum: "Min",
    Where: "Where",
}


@converter(*_SAME_NAME)
def elementwise(g: GraphBuilder, call: Call):
    g.node(_SAME_NAME[call.function], call.inputs, call.output)


@converter(MatMul)
def matmul(g: GraphBuilder, call: Call):
    """ONNX MatMul has numpy.matmul's semantics, 1-D operands included."""
    g.node("MatMul", call.inputs, call.output)
