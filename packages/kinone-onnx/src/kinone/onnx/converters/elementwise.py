"""Unary elementwise Functions: most are one ONNX operator of the same name; SiLU and GELU
are written out (x·σ(x); x·½(1 + erf(x/√2))) for opsets that lack them."""

from __future__ import annotations

import math

from kinone.autograd.ops.device import ToDevice
from kinone.autograd.ops.elementwise import Abs, Cast, Clip, Exp, Log, ReLU, Sigmoid, Sqrt, Tanh
from kinone.nn.functional.activation import GELU, Erf, SiLU

from ..graph import Call, GraphBuilder, tensor_type
from ..registry import converter

_SAME_NAME = {
    Exp: "Exp",
    Log: "Log",
    Sqrt: "Sqrt",
    Tanh: "Tanh",
    Sigmoid: "Sigmoid",
    ReLU: "Relu",
    Abs: "Abs",
    Erf: "Erf",
}


@converter(*_SAME_NAME)
def unary(g: GraphBuilder, call: Call):
    g.node(_SAME_NAME[call.function], call.inputs, call.output)


@converter(Clip)
def clip(g: GraphBuilder, call: Call):
    """Clip takes its bounds as optional inputs ("" for an absent one) of x's type."""
    bounds = [
        g.constant(call.attrs[k], call.dtype, hint=k) if call.attrs.get(k) is not None else "" for k in ("min", "max")
    ]
    while bounds and bounds[-1] == "":
        bounds.pop()
    g.node("Clip", [call.inputs[0], *bounds], call.output)


@converter(Cast)
def cast(g: GraphBuilder, call: Call):
    g.node("Cast", call.inputs, call.output, to=tensor_type(call.attrs["dtype"]))


@converter(ToDevice)
def to_device(g: GraphBuilder, call: Call):
    """An ONNX graph has no devices: the runtime places tensors."""
    g.node("Identity", call.inputs, call.output)


@converter(SiLU)
def silu(g: GraphBuilder, call: Call):
    (x,) = call.inputs
    g.node("Mul", [x, g.node("Sigmoid", [x])], call.output)


@converter(GELU)
def gelu(g: GraphBuilder, call: Call):
    """Gelu is an operator from opset 20; before, x · ½ · (1 + erf(x / √2))."""
    (x,) = call.inputs
    if g.opset >= 20:
        g.node("Gelu", [x], call.output, approximate="none")
        return
    dtype = call.dtype
    erf = g.node("Erf", [g.node("Mul", [x, g.constant(1 / math.sqrt(2), dtype, "inv_sqrt2")])])
    half_cdf = g.node("Mul", [g.node("Add", [erf, g.constant(1, dtype, "one")]), g.constant(0.5, dtype, "half")])
    g.node("Mul", [x, half_cdf], call.output)
