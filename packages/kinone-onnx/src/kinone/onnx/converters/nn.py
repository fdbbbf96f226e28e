"""kinone.nn's layer Functions: linear, convolution, batch norm (inference form) and pooling.
The training-only Functions (losses, batch statistics, dropout) are listed as such."""

from __future__ import annotations

import numpy as np

from kinone.nn.functional.conv import Conv2d
from kinone.nn.functional.dropout import Dropout
from kinone.nn.functional.linear import Linear
from kinone.nn.functional.loss import MSE, NLL, BCEWithLogits, CrossEntropy
from kinone.nn.functional.normalization import BatchNormEval, BatchNormTraining
from kinone.nn.functional.pooling import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    MaxPool2d,
    averaging_matrix,
)

from ..graph import Call, GraphBuilder
from ..registry import converter, training_only

for _loss in (CrossEntropy, NLL, BCEWithLogits, MSE):
    training_only(_loss, "a loss is computed in training, not part of the exported model")
training_only(BatchNormTraining, "batch norm with batch statistics runs in training mode; export calls model.eval()")
training_only(Dropout, "dropout is the identity in eval mode; a model that still calls it is in training mode")


@converter(Linear)
def linear(g: GraphBuilder, call: Call):
    """2-D input: Gemm(x, W, b, transB=1). Otherwise MatMul(x, Wᵀ) (+ b), any leading dims."""
    x, weight, *bias = call.inputs
    if len(call.input_shapes[0]) == 2:
        g.node("Gemm", [x, weight, *bias], call.output, transB=1)
        return
    product = g.node("MatMul", [x, g.node("Transpose", [weight], perm=[1, 0])], None if bias else call.output)
    if bias:
        g.node("Add", [product, bias[0]], call.output)


@converter(Conv2d)
def conv2d(g: GraphBuilder, call: Call):
    """Conv with Kinone's attributes (conv2d passes all of them; conv1d is conv2d on (N, C, 1, L))."""
    a = call.attrs
    g.node(
        "Conv",
        call.inputs,
        call.output,
        kernel_shape=list(call.input_shapes[1][2:]),
        strides=list(a["stride"]),
        pads=_pads(a["padding"]),
        dilations=list(a["dilation"]),
        group=a["groups"],
    )


@converter(BatchNormEval)
def batch_norm(g: GraphBuilder, call: Call):
    """BatchNormalization(x, scale, bias, mean, var); an absent weight is 1, an absent bias 0."""
    x, mean, var, *optional = call.inputs
    given = dict(zip(call.attrs.get("inputs", ()), optional, strict=True))
    channels = call.input_shapes[1][0]
    scale = given.get("weight") or g.constant(np.ones(channels), call.dtype, "ones")
    bias = given.get("bias") or g.constant(np.zeros(channels), call.dtype, "zeros")
    g.node("BatchNormalization", [x, scale, bias, mean, var], call.output, epsilon=float(call.attrs.get("eps", 1e-5)))


def _pads(padding) -> list[int]:
    return [padding[0], padding[1], padding[0], padding[1]]


@converter(MaxPool2d)
def max_pool2d(g: GraphBuilder, call: Call):
    a = call.attrs
    g.node(
        "MaxPool",
        call.inputs,
        call.output,
        kernel_shape=list(a["kernel_size"]),
        strides=list(a["stride"]),
        pads=_pads(a["padding"]),
        dilations=list(a["dilation"]),
        ceil_mode=int(a["ceil_mode"]),
    )


@converter(AvgPool2d)
def avg_pool2d(g: GraphBuilder, call: Call):
    """AveragePool with count_include_pad and ceil_mode written out. A divisor_override D
    scales the full-window average by kh·kw / D, exact when every window is full (no ceil_mode)."""
    a = call.attrs
    override = a["divisor_override"]
    if override is not None and a["ceil_mode"]:
        raise call.error("divisor_override with ceil_mode=True has no ONNX form (windows of several sizes)")
    count_include_pad = a["count_include_pad"] or override is not None
    out = g.node(
        "AveragePool",
        call.inputs,
        None if override is not None else call.output,
        kernel_shape=list(a["kernel_size"]),
        strides=list(a["stride"]),
        pads=_pads(a["padding"]),
        ceil_mode=int(a["ceil_mode"]),
        count_include_pad=int(count_include_pad),
    )
    if override is not None:
        kh, kw = a["kernel_size"]
        g.node("Mul", [out, g.constant(kh * kw / override, call.dtype, "divisor_scale")], call.output)


@converter(AdaptiveAvgPool2d)
def adaptive_avg_pool2d(g: GraphBuilder, call: Call):
    """(1, 1): GlobalAveragePool. Sizes that divide the input: AveragePool with kernel = stride
    = input / output. Any other size: A_h · x · A_wᵀ with the averaging matrices Kinone uses."""
    (x,), (shape,) = call.inputs, call.input_shapes
    (height, width), (out_h, out_w) = shape[2:], call.attrs["output_size"]
    if (out_h, out_w) != (1, 1) and any(call.input_dynamic[0][2:]):
        raise call.error(
            f"adaptive average pooling to {(out_h, out_w)} of an input whose size is dynamic has no "
            "ONNX form with fixed windows; export with dynamic_size=False (or pool to 1x1)"
        )
    if (out_h, out_w) == (1, 1):
        g.node("GlobalAveragePool", [x], call.output)
    elif height % out_h == 0 and width % out_w == 0:
        kernel = [height // out_h, width // out_w]
        g.node("AveragePool", [x], call.output, kernel_shape=kernel, strides=kernel)
    else:
        rows = g.constant(averaging_matrix(height, out_h, call.dtype), hint="rows")
        cols = g.constant(averaging_matrix(width, out_w, call.dtype).T, hint="cols")
        g.node("MatMul", [g.node("MatMul", [rows, x]), cols], call.output)
