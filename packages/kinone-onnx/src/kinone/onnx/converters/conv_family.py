"""Converters for the convolution family's newer Functions: ConvTranspose2d, Interpolate
(Resize), PixelShuffle (DepthToSpace) and Pad."""

from __future__ import annotations

import numpy as np

from kinone.nn.functional.conv import ConvTranspose2d
from kinone.nn.functional.padding import Pad
from kinone.nn.functional.pixel_shuffle import PixelShuffle
from kinone.nn.functional.upsample import Interpolate

from ..graph import Call, GraphBuilder
from ..registry import converter


@converter(ConvTranspose2d)
def conv_transpose2d(g: GraphBuilder, call: Call):
    """ConvTranspose with Kinone's attributes; the weight layout (C, O / groups, kH, kW) is ONNX's."""
    a = call.attrs
    (pad_h, pad_w) = a["padding"]
    g.node(
        "ConvTranspose",
        call.inputs,
        call.output,
        kernel_shape=list(call.input_shapes[1][2:]),
        strides=list(a["stride"]),
        pads=[pad_h, pad_w, pad_h, pad_w],
        dilations=list(a["dilation"]),
        output_padding=list(a["output_padding"]),
        group=a["groups"],
    )


@converter(Interpolate)
def interpolate(g: GraphBuilder, call: Call):
    """Resize: nearest as PyTorch's floor(o / scale) (asymmetric, floor), linear as
    pytorch_half_pixel or align_corners. With scale_factor the scales input carries it (ONNX's
    output size floor(in · scale) and coordinates o / scale are PyTorch's); with a size, the
    sizes input (N and C read from the input's shape, so the batch stays dynamic)."""
    a = call.attrs
    (x,) = call.inputs
    if a["mode"] == "nearest":
        modes = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    else:
        transform = "align_corners" if a["align_corners"] else "pytorch_half_pixel"
        modes = {"mode": "linear", "coordinate_transformation_mode": transform}
    if a["scales"] is not None:
        scales = g.constant(np.array([1.0, 1.0, *a["scales"]]), np.float32, "scales")
        g.node("Resize", [x, "", scales], call.output, **modes)
        return
    lead = g.node("Slice", [g.node("Shape", [x]), g.int64s([0]), g.int64s([2])])
    sizes = g.node("Concat", [lead, g.int64s(a["output_size"], "size")], axis=0)
    g.node("Resize", [x, "", "", sizes], call.output, **modes)


@converter(PixelShuffle)
def pixel_shuffle(g: GraphBuilder, call: Call):
    """DepthToSpace in CRD order (channel, then the r x r block), PyTorch's arrangement."""
    if len(call.input_shapes[0]) != 4:
        raise call.error(
            f"pixel_shuffle of a {len(call.input_shapes[0])}-D input: ONNX's DepthToSpace takes (N, C, H, W)"
        )
    g.node("DepthToSpace", call.inputs, call.output, blocksize=call.attrs["upscale_factor"], mode="CRD")


_ONNX_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}


@converter(Pad)
def pad(g: GraphBuilder, call: Call):
    """Pad with pads [begin of every axis..., end of every axis...] (PyTorch's pad lists the
    last axis first); circular padding ("wrap") needs opset 19."""
    a = call.attrs
    ndim = len(call.input_shapes[0])
    begins, ends = [0] * ndim, [0] * ndim
    for k in range(len(a["pad"]) // 2):
        begins[ndim - 1 - k], ends[ndim - 1 - k] = a["pad"][2 * k], a["pad"][2 * k + 1]
    mode = _ONNX_PAD_MODES.get(a["mode"])
    if mode is None:
        if g.opset < 19:
            raise call.error("circular padding needs ONNX opset 19 (Pad mode 'wrap'); export with opset=19 or later")
        mode = "wrap"
    inputs = [call.inputs[0], g.int64s(begins + ends, "pads")]
    if a["mode"] == "constant":
        inputs.append(g.constant(np.array(a["value"]), call.dtype, "pad_value"))
    g.node("Pad", inputs, call.output, mode=mode)
