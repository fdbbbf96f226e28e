"""The in-place Functions (`add_ mul_ div_ clamp_ fill_ copy_`, `+= -= *= /=`): an ONNX graph has
no in-place updates, so each writes a new value that later nodes read under the tensor's name
(the exporter renames a tensor at every record that outputs it)."""

from __future__ import annotations

from kinone.autograd.ops.inplace import (
    AddInPlace,
    ClampInPlace,
    CopyInPlace,
    DivInPlace,
    FillInPlace,
    MulInPlace,
    RandomInPlace,
)

from ..graph import Call, GraphBuilder, tensor_type
from ..registry import converter, training_only


def _cast_to_self(g: GraphBuilder, call: Call, value: str) -> str:
    """An in-place result keeps the changed tensor's dtype (a float64 operand into a float32 tensor)."""
    return g.node("Cast", [value], to=tensor_type(call.dtype))


@converter(AddInPlace)
def add(g: GraphBuilder, call: Call):
    """y + alpha·o (sub_ is alpha = -alpha)."""
    y, other = call.inputs
    alpha = call.attrs.get("alpha", 1)
    if alpha != 1:
        other = g.node("Mul", [other, g.constant(alpha, call.dtype, hint="alpha")])
    g.node("Add", [y, _cast_to_self(g, call, other)], call.output)


@converter(MulInPlace, DivInPlace)
def mul_div(g: GraphBuilder, call: Call):
    y, other = call.inputs
    g.node("Mul" if call.function is MulInPlace else "Div", [y, _cast_to_self(g, call, other)], call.output)


@converter(ClampInPlace)
def clamp(g: GraphBuilder, call: Call):
    bounds = [
        g.constant(call.attrs[k], call.dtype, hint=k) if call.attrs.get(k) is not None else "" for k in ("min", "max")
    ]
    while bounds and bounds[-1] == "":
        bounds.pop()
    g.node("Clip", [call.inputs[0], *bounds], call.output)


@converter(CopyInPlace)
def copy(g: GraphBuilder, call: Call):
    """src broadcast to y's shape (Expand to Shape(y)) and cast to y's dtype."""
    y, src = call.inputs
    g.node("Cast", [g.node("Expand", [src, g.node("Shape", [y])])], call.output, to=tensor_type(call.dtype))


@converter(FillInPlace)
def fill(g: GraphBuilder, call: Call):
    """v everywhere: Expand of the value (a number, or a 0-d tensor input) to Shape(y)."""
    y = call.inputs[0]
    value = call.inputs[1] if len(call.inputs) > 1 else g.constant(call.attrs.get("fill", 0), call.dtype, hint="fill")
    g.node("Cast", [g.node("Expand", [value, g.node("Shape", [y])])], call.output, to=tensor_type(call.dtype))


training_only(
    RandomInPlace, "uniform_ and normal_ draw new values: an initializer's tool, not part of a model's forward"
)
