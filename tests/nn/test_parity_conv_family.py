"""Parity with torch: conv1d, conv_transpose2d, interpolate, pixel_shuffle and pad (forward and
every input gradient, float64 and float32), and their layers (parameter shapes, state-dict
keys, initialisation bounds, outputs with copied weights)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kinone import nn  # noqa: E402
from kinone.autograd import Tensor  # noqa: E402
from kinone.nn import functional as F  # noqa: E402

TF = torch.nn.functional
RTOL64, ATOL64 = 1e-7, 1e-10
RTOL32, ATOL32 = 1e-4, 1e-5
rng = np.random.default_rng(23)


def assert_parity(kinone_fn, torch_fn, arrays, rtol=RTOL64, atol=ATOL64):
    """Same inputs and cotangent through both libraries: outputs and every input gradient agree."""
    k_inputs = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    t_inputs = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    k_out, t_out = kinone_fn(*k_inputs), torch_fn(*t_inputs)
    assert k_out.shape == tuple(t_out.shape) and k_out.dtype == arrays[0].dtype
    np.testing.assert_allclose(k_out.numpy(), t_out.detach().numpy(), rtol=rtol, atol=atol)
    cotangent = rng.standard_normal(tuple(t_out.shape)).astype(arrays[0].dtype)
    k_out.backward(cotangent)
    t_out.backward(torch.tensor(cotangent))
    for i, (k, t) in enumerate(zip(k_inputs, t_inputs, strict=True)):
        assert k.grad.dtype == arrays[i].dtype
        np.testing.assert_allclose(
            k.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol, err_msg=f"gradient of input {i}"
        )


def r(*shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize(
    "x, w, kwargs",
    [
        ((2, 3, 10), (4, 3, 3), {}),
        ((2, 4, 11), (6, 2, 3), {"stride": 2, "padding": 1, "dilation": 2, "groups": 2}),
        ((1, 3, 7), (3, 1, 5), {"padding": "same", "groups": 3}),
        ((2, 2, 8), (3, 2, 4), {"padding": "valid", "stride": 3}),
    ],
)
@pytest.mark.parametrize("bias", [True, False])
def test_conv1d(x, w, kwargs, bias):
    arrays = [r(*x), r(*w)] + ([r(w[0])] if bias else [])
    assert_parity(lambda *t: F.conv1d(*t, **kwargs), lambda *t: TF.conv1d(*t, **kwargs), arrays)


@pytest.mark.parametrize(
    "x, w, kwargs",
    [
        ((2, 3, 5, 6), (3, 4, 3, 3), {}),
        ((2, 4, 5, 6), (4, 3, 3, 3), {"stride": 2, "padding": 1, "output_padding": 1}),
        (
            (1, 4, 4, 5),
            (4, 3, 3, 2),
            {"stride": (2, 3), "padding": (0, 2), "output_padding": (1, 0), "groups": 2, "dilation": 2},
        ),
        ((2, 6, 3, 3), (6, 1, 3, 3), {"stride": 2, "groups": 6}),  # depthwise
        ((2, 3, 4, 4), (3, 5, 1, 1), {"stride": 2}),
        ((1, 2, 3, 4), (2, 2, 5, 5), {"padding": 2, "dilation": (1, 2), "output_padding": (0, 1)}),
    ],
)
@pytest.mark.parametrize("bias", [True, False])
def test_conv_transpose2d(x, w, kwargs, bias):
    groups = kwargs.get("groups", 1)
    arrays = [r(*x), r(*w)] + ([r(w[1] * groups)] if bias else [])
    assert_parity(lambda *t: F.conv_transpose2d(*t, **kwargs), lambda *t: TF.conv_transpose2d(*t, **kwargs), arrays)


INTERPOLATE = [
    {"scale_factor": 2},
    {"scale_factor": 1.7},
    {"scale_factor": (0.6, 1.3)},
    {"size": (5, 7)},
    {"size": (3, 2)},
    {"size": 9},
    {"scale_factor": 1.7, "recompute_scale_factor": True},
]


@pytest.mark.parametrize("kwargs", INTERPOLATE)
@pytest.mark.parametrize("mode", ["nearest", "bilinear-False", "bilinear-True"])
def test_interpolate(kwargs, mode):
    if mode != "nearest":
        mode, corners = mode.split("-")
        kwargs = {**kwargs, "mode": mode, "align_corners": corners == "True"}
    assert_parity(lambda t: F.interpolate(t, **kwargs), lambda t: TF.interpolate(t, **kwargs), [r(2, 3, 6, 5)])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scale_factor": 2.5, "mode": "linear"},
        {"size": 4, "mode": "linear", "align_corners": True},
        {"scale_factor": 3},
        {"size": 4},
    ],
)
def test_interpolate_3d(kwargs):
    assert_parity(lambda t: F.interpolate(t, **kwargs), lambda t: TF.interpolate(t, **kwargs), [r(2, 3, 6)])


@pytest.mark.parametrize("shape, factor", [((2, 8, 3, 4), 2), ((1, 18, 2, 3), 3), ((9, 2, 2), 3), ((2, 2, 4, 1, 1), 2)])
def test_pixel_shuffle(shape, factor):
    assert_parity(lambda t: F.pixel_shuffle(t, factor), lambda t: TF.pixel_shuffle(t, factor), [r(*shape)])


@pytest.mark.parametrize(
    "shape, pad, mode, value",
    [
        ((2, 3, 4, 5), (2, 1, 1, 2), "constant", None),
        ((2, 3, 4, 5), (0, 3), "constant", -1.5),
        ((2, 3, 4, 5), (-1, 2, 1, -2), "constant", 0.5),
        ((2, 3, 4, 5), (1, 1, 2, 2, 1, 0), "constant", None),
        ((2, 3, 4, 5), (2, 1, 1, 3), "reflect", None),
        ((2, 3, 4, 5), (4, 4, 3, 3), "reflect", None),  # the widest reflection: L - 1
        ((2, 3, 6), (3, 2), "reflect", None),
        ((2, 3, 4, 5), (2, 1, 1, 3), "replicate", None),
        ((2, 3, 6), (4, 0), "replicate", None),
        ((2, 3, 4, 5), (2, 1, 1, 3), "circular", None),
        ((2, 3, 4, 5), (5, 5, 4, 0), "circular", None),
    ],
)
def test_pad(shape, pad, mode, value):
    kwargs = {"mode": mode} if value is None else {"mode": mode, "value": value}
    assert_parity(lambda t: F.pad(t, pad, **kwargs), lambda t: TF.pad(t, pad, **kwargs), [r(*shape)])


def test_float32_matches_at_float32_precision():
    cases = [
        (
            lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1),
            lambda x, w: TF.conv_transpose2d(x, w, stride=2, padding=1),
            [r(4, 8, 7, 7, dtype=np.float32), r(8, 6, 3, 3, dtype=np.float32)],
        ),
        (
            lambda x, w: F.conv1d(x, w, padding=1),
            lambda x, w: TF.conv1d(x, w, padding=1),
            [r(4, 8, 20, dtype=np.float32), r(6, 8, 3, dtype=np.float32)],
        ),
        (
            lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"),
            lambda x: TF.interpolate(x, scale_factor=2, mode="bilinear"),
            [r(2, 4, 9, 7, dtype=np.float32)],
        ),
        (
            lambda x: F.interpolate(x, size=(13, 5)),
            lambda x: TF.interpolate(x, size=(13, 5)),
            [r(2, 4, 9, 7, dtype=np.float32)],
        ),
        (lambda x: F.pixel_shuffle(x, 2), lambda x: TF.pixel_shuffle(x, 2), [r(2, 8, 5, 5, dtype=np.float32)]),
        (
            lambda x: F.pad(x, (2, 2, 1, 1), "reflect"),
            lambda x: TF.pad(x, (2, 2, 1, 1), "reflect"),
            [r(2, 4, 5, 5, dtype=np.float32)],
        ),
    ]
    for kinone_fn, torch_fn, arrays in cases:
        assert_parity(kinone_fn, torch_fn, arrays, RTOL32, ATOL32)


# ---------------------------------------------------------------------------- layers
LAYERS = [
    ("Conv1d", (3, 4, 3), {"stride": 2, "padding": 1, "bias": False}, (2, 3, 9)),
    ("Conv1d", (4, 6, 5), {"groups": 2, "padding": "same", "dilation": 2}, (2, 4, 12)),
    ("Conv1d", (3, 4, 3), {"padding": 2, "padding_mode": "reflect"}, (2, 3, 9)),
    ("Conv2d", (3, 4, 3), {"padding": (1, 2), "padding_mode": "replicate"}, (2, 3, 6, 7)),
    ("Conv2d", (3, 4, 3), {"padding": 1, "padding_mode": "circular"}, (2, 3, 6, 7)),
    ("ConvTranspose2d", (3, 4, 3), {"stride": 2, "padding": 1, "output_padding": 1}, (2, 3, 5, 5)),
    ("ConvTranspose2d", (4, 6, (3, 2)), {"groups": 2, "dilation": 2, "bias": False}, (2, 4, 5, 5)),
    ("Upsample", (), {"scale_factor": 2, "mode": "bilinear"}, (2, 3, 4, 5)),
    ("Upsample", (), {"size": (7, 3)}, (2, 3, 4, 5)),
    ("UpsamplingNearest2d", (), {"scale_factor": 3}, (2, 3, 4, 5)),
    ("UpsamplingBilinear2d", (), {"size": (7, 9)}, (2, 3, 4, 5)),
    ("PixelShuffle", (2,), {}, (2, 8, 3, 3)),
    ("ZeroPad2d", ((1, 2, 0, 3),), {}, (2, 3, 4, 5)),
    ("ConstantPad2d", (2, 0.5), {}, (2, 3, 4, 5)),
    ("ReflectionPad2d", ((1, 2, 3, 0),), {}, (2, 3, 4, 5)),
    ("ReplicationPad2d", (2,), {}, (2, 3, 4, 5)),
    ("MaxPool2d", (3, 2, 1, 2), {"ceil_mode": True}, (2, 3, 9, 8)),
    ("MaxPool2d", (2,), {}, (2, 3, 6, 5)),
    ("AvgPool2d", (3, 2, 1), {"divisor_override": 4, "count_include_pad": False}, (2, 3, 7, 8)),
]


@pytest.mark.parametrize("name, args, kwargs, shape", LAYERS, ids=[f"{n}-{i}" for i, (n, *_) in enumerate(LAYERS)])
def test_layer_matches_torch(name, args, kwargs, shape):
    ours, theirs = getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    assert list(ours_state) == list(theirs_state)
    for key, value in theirs_state.items():
        assert ours_state[key].shape == tuple(value.shape) and ours_state[key].dtype == np.float32, key
    if "weight" in theirs_state:  # PyTorch's initialisation: U(-1/√fan_in, 1/√fan_in) for both
        bound = 1 / np.sqrt(np.prod(theirs_state["weight"].shape[1:]))
        assert all(np.abs(v).max() <= bound for v in ours_state.values())
    ours.load_state_dict({k: v.numpy() for k, v in theirs_state.items()})
    x = r(*shape, dtype=np.float32)
    k_out = ours(Tensor(x)).numpy()
    t_out = theirs(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(k_out, t_out, rtol=1e-5, atol=1e-5)
    for attribute in (
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "output_padding",
        "groups",
        "padding_mode",
        "scale_factor",
        "size",
        "mode",
        "align_corners",
        "upscale_factor",
        "ceil_mode",
        "count_include_pad",
        "divisor_override",
        "return_indices",
    ):
        if hasattr(theirs, attribute):
            assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    assert repr(ours) == repr(theirs)


def test_conv_transpose2d_output_size_picks_the_output_padding():
    ours, theirs = nn.ConvTranspose2d(3, 2, 3, stride=3), torch.nn.ConvTranspose2d(3, 2, 3, stride=3)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = r(1, 3, 4, 4, dtype=np.float32)
    for size in [(12, 12), (13, 14), (1, 3, 14, 12)]:
        expected = theirs(torch.tensor(x), output_size=list(size)).detach().numpy()
        np.testing.assert_allclose(ours(Tensor(x), output_size=size).numpy(), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"valid sizes range from 12 to 14"):
        ours(Tensor(x), output_size=(15, 12))
