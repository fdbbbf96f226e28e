"""kinone.nn's per-sample normalisations and lookups: layer norm (LayerNormalization from
opset 17, written out before), group and instance norm (InstanceNormalization, over a
(N, G, -1) view for groups of several channels, as PyTorch exports it), embedding (Gather),
the activations beyond ReLU (each its ONNX operator where one exists at the opset) and cosine
similarity (written out); channel dropout and the elementwise losses are training-only."""

from __future__ import annotations

import numpy as np

from kinone.nn.functional.activation import ELU, Hardsigmoid, Hardswish, LeakyReLU, Mish, ReLU6, Softplus
from kinone.nn.functional.distance import CosineSimilarity
from kinone.nn.functional.dropout import ChannelDropout
from kinone.nn.functional.embedding import Embedding
from kinone.nn.functional.loss import L1, BinaryCrossEntropy, KLDiv, SmoothL1
from kinone.nn.functional.normalization import GroupNorm, LayerNorm

from ..graph import Call, GraphBuilder
from ..registry import converter, training_only


def _affine(g: GraphBuilder, call: Call, shape: tuple) -> tuple[str, str]:
    """The weight and bias inputs of a norm Function; an absent weight is 1, an absent bias 0."""
    given = dict(zip(call.attrs.get("inputs", ()), call.inputs[1:]))
    weight = given.get("weight") or g.constant(np.ones(shape), call.dtype, "ones")
    bias = given.get("bias") or g.constant(np.zeros(shape), call.dtype, "zeros")
    return weight, bias


@converter(LayerNorm)
def layer_norm(g: GraphBuilder, call: Call):
    """LayerNormalization(x, w, b, axis=-k); before opset 17: (x - μ) / √(σ² + eps) · w + b with
    ReduceMean over the last k axes."""
    x = call.inputs[0]
    k = int(call.attrs.get("normalized_ndim", 1))
    eps = float(call.attrs.get("eps", 1e-5))
    weight, bias = _affine(g, call, tuple(call.input_shapes[0][-k:]))
    if g.opset >= 17:
        g.node("LayerNormalization", [x, weight, bias], call.output, axis=-k, epsilon=eps)
        return
    axes = list(range(-k, 0))
    centred = g.node("Sub", [x, g.reduce("ReduceMean", x, axes, keepdims=True)])
    var = g.reduce("ReduceMean", g.node("Mul", [centred, centred]), axes, keepdims=True)
    std = g.node("Sqrt", [g.node("Add", [var, g.constant(eps, call.dtype, "eps")])])
    scaled = g.node("Mul", [g.node("Div", [centred, std]), weight])
    g.node("Add", [scaled, bias], call.output)


@converter(GroupNorm)
def group_norm(g: GraphBuilder, call: Call):
    """One channel per group (instance norm): InstanceNormalization(x, w, b). Otherwise
    InstanceNormalization of x viewed as (N, G, -1) with unit scale, reshaped back to x's
    shape, then · w + b per channel (w, b unsqueezed to (C, 1, ...))."""
    x = call.inputs[0]
    shape = call.input_shapes[0]
    channels, groups = shape[1], int(call.attrs.get("num_groups", 1))
    eps = float(call.attrs.get("eps", 1e-5))
    if groups == channels and len(shape) >= 3:
        weight, bias = _affine(g, call, (channels,))
        g.node("InstanceNormalization", [x, weight, bias], call.output, epsilon=eps)
        return
    grouped = g.node("Reshape", [x, g.int64s([0, groups, -1])])
    ones = g.constant(np.ones(groups), call.dtype, "ones")
    zeros = g.constant(np.zeros(groups), call.dtype, "zeros")
    normalized = g.node("InstanceNormalization", [grouped, ones, zeros], epsilon=eps)
    given = dict(zip(call.attrs.get("inputs", ()), call.inputs[1:]))
    out = g.node("Reshape", [normalized, g.node("Shape", [x])], call.output if not given else None)
    spatial_axes = list(range(1, len(shape) - 1))
    for name, op_type in (("weight", "Mul"), ("bias", "Add")):
        if name not in given:
            continue
        vector = g.unsqueeze(given[name], spatial_axes) if spatial_axes else given[name]
        last = name == "bias" or "bias" not in given
        out = g.node(op_type, [out, vector], call.output if last else None)


@converter(Embedding)
def embedding(g: GraphBuilder, call: Call):
    """Gather(weight, indices) along axis 0 (padding_idx and scale_grad_by_freq only change the
    gradient)."""
    indices, weight = call.inputs
    g.node("Gather", [weight, indices], call.output, axis=0)


# ---------------------------------------------------------------------------- activations
@converter(LeakyReLU)
def leaky_relu(g: GraphBuilder, call: Call):
    g.node("LeakyRelu", call.inputs, call.output, alpha=float(call.attrs.get("negative_slope", 0.01)))


@converter(ELU)
def elu(g: GraphBuilder, call: Call):
    g.node("Elu", call.inputs, call.output, alpha=float(call.attrs.get("alpha", 1.0)))


@converter(Softplus)
def softplus(g: GraphBuilder, call: Call):
    """Where(β·x > threshold, x, Softplus(β·x) / β); β = 1 skips the two scalings."""
    (x,) = call.inputs
    beta, threshold = float(call.attrs.get("beta", 1.0)), float(call.attrs.get("threshold", 20.0))
    scaled = x if beta == 1 else g.node("Mul", [x, g.constant(beta, call.dtype, "beta")])
    smooth = g.node("Softplus", [scaled])
    if beta != 1:
        smooth = g.node("Div", [smooth, g.constant(beta, call.dtype, "beta")])
    linear = g.node("Greater", [scaled, g.constant(threshold, call.dtype, "threshold")])
    g.node("Where", [linear, x, smooth], call.output)


@converter(ReLU6)
def relu6(g: GraphBuilder, call: Call):
    g.node("Clip", [call.inputs[0], g.constant(0, call.dtype, "zero"), g.constant(6, call.dtype, "six")], call.output)


@converter(Hardsigmoid)
def hardsigmoid(g: GraphBuilder, call: Call):
    g.node("HardSigmoid", call.inputs, call.output, alpha=1 / 6, beta=0.5)


@converter(Hardswish)
def hardswish(g: GraphBuilder, call: Call):
    g.node("HardSwish", call.inputs, call.output)


@converter(Mish)
def mish(g: GraphBuilder, call: Call):
    """Mish is an operator from opset 18; before, x · tanh(softplus(x))."""
    (x,) = call.inputs
    if g.opset >= 18:
        g.node("Mish", [x], call.output)
        return
    g.node("Mul", [x, g.node("Tanh", [g.node("Softplus", [x])])], call.output)


# ---------------------------------------------------------------------------- training-only, similarity
training_only(ChannelDropout, "dropout2d is the identity in eval mode; a model that still calls it is in training mode")
for _loss in (BinaryCrossEntropy, L1, SmoothL1, KLDiv):
    training_only(_loss, "a loss is computed in training, not part of the exported model")


@converter(CosineSimilarity)
def cosine_similarity(g: GraphBuilder, call: Call):
    """ReduceSum(a / max(‖a‖, eps) · b / max(‖b‖, eps)) over dim, the norms
    Sqrt(ReduceSum(x², dim)) kept along it. dim counts from the end, so that it names the same
    axis of an input of lower rank (the inputs broadcast)."""
    dim = int(call.attrs.get("dim", 1)) - (len(call.output_shape) + 1)
    eps = g.constant(float(call.attrs.get("eps", 1e-8)), call.dtype, "eps")
    units = []
    for x in call.inputs:
        norm = g.node("Sqrt", [g.reduce("ReduceSum", g.node("Mul", [x, x]), [dim], keepdims=True)])
        units.append(g.node("Div", [x, g.node("Max", [norm, eps])]))
    g.reduce("ReduceSum", g.node("Mul", units), [dim], keepdims=False, output=call.output)
