"""conv2d and the pooling ops without torch: values against small reference loops written
from PyTorch's definitions, shapes, dtypes, gradient plumbing and error messages."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from kinone.autograd import Tensor, no_grad, trace
from kinone.nn import functional as F
from kinone.nn.functional import conv as conv_module
from kinone.nn.functional.conv import Conv2d
from kinone.nn.functional.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

rng = np.random.default_rng(5)


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# ---------------------------------------------------------------------------- references
def reference_conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Direct sum over output channels and kernel offsets (no im2col)."""
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    n, _, height, width = x.shape
    out_channels, group_channels, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out_h = (height + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    out_w = (width + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, out_channels, out_h, out_w))
    per_group = out_channels // groups
    for o in range(out_channels):
        first = (o // per_group) * group_channels
        for i, j in itertools.product(range(kh), range(kw)):
            patch = xp[:, first : first + group_channels, i * dh :: sh, j * dw :: sw][:, :, :out_h, :out_w]
            out[:, o] += np.einsum("nchw,c->nhw", patch, w[o, :, i, j])
        if b is not None:
            out[:, o] += b[o]
    return out


def reference_max_pool2d(x, g, kernel, stride, padding, dilation=1, ceil_mode=False):
    """PyTorch's CPU kernel, one window at a time: forward and the gradient for cotangent g."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = pair(kernel), pair(stride), pair(padding), pair(dilation)
    n, c, height, width = x.shape
    out_h = pool_length(height, kh, sh, ph, dh, ceil_mode)
    out_w = pool_length(width, kw, sw, pw, dw, ceil_mode)
    out, grad = np.empty((n, c, out_h, out_w)), np.zeros_like(x)
    for a, b, oh, ow in itertools.product(range(n), range(c), range(out_h), range(out_w)):
        best, where = -math.inf, None
        for i, j in itertools.product(range(kh), range(kw)):
            h, w = oh * sh - ph + i * dh, ow * sw - pw + j * dw
            if 0 <= h < height and 0 <= w < width:
                if where is None:
                    where = (h, w)
                v = x[a, b, h, w]
                if v > best or math.isnan(v):
                    best, where = v, (h, w)
        out[a, b, oh, ow] = best
        grad[a, b, where[0], where[1]] += g[a, b, oh, ow]
    return out, grad


def reference_avg_pool2d(x, kernel, stride, padding, ceil_mode=False, count_include_pad=True, divisor_override=None):
    (kh, kw), (sh, sw), (ph, pw) = pair(kernel), pair(stride), pair(padding)
    n, c, height, width = x.shape
    out_h = pool_length(height, kh, sh, ph, 1, ceil_mode)
    out_w = pool_length(width, kw, sw, pw, 1, ceil_mode)
    out = np.empty((n, c, out_h, out_w))
    for oh, ow in itertools.product(range(out_h), range(out_w)):
        h0, w0 = oh * sh - ph, ow * sw - pw
        h1, w1 = min(h0 + kh, height + ph), min(w0 + kw, width + pw)
        pool_size = (h1 - h0) * (w1 - w0)
        h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, height), min(w1, width)
        total = x[:, :, h0:h1, w0:w1].sum(axis=(2, 3))
        divisor = divisor_override or (pool_size if count_include_pad else (h1 - h0) * (w1 - w0))
        out[:, :, oh, ow] = total / divisor
    return out


def reference_adaptive_avg_pool2d(x, out_h, out_w):
    height, width = x.shape[2:]
    out = np.empty((*x.shape[:2], out_h, out_w))
    for oh, ow in itertools.product(range(out_h), range(out_w)):
        h0, h1 = oh * height // out_h, math.ceil((oh + 1) * height / out_h)
        w0, w1 = ow * width // out_w, math.ceil((ow + 1) * width / out_w)
        out[:, :, oh, ow] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return out


def pool_length(length, k, s, p, d, ceil_mode):
    out = (length + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= length + p:
        out -= 1
    return out


def leaf(a):
    return Tensor(np.array(a, copy=True), requires_grad=True)


# ---------------------------------------------------------------------------- conv2d values
CONV_CONFIGS = [
    # (x shape, weight shape, stride, padding, dilation, groups)
    ((2, 3, 7, 6), (4, 3, 3, 3), 1, 1, 1, 1),
    ((2, 3, 7, 6), (4, 3, 3, 3), 2, 0, 1, 1),
    ((1, 2, 9, 8), (3, 2, 2, 3), (2, 1), (1, 2), (2, 1), 1),
    ((2, 4, 6, 6), (6, 2, 3, 3), 1, 1, 1, 2),
    ((2, 4, 5, 5), (4, 1, 3, 3), 1, 1, 1, 4),  # depthwise
    ((2, 4, 9, 7), (4, 1, 5, 3), 2, (2, 1), 1, 4),  # depthwise, stride 2
    ((1, 3, 8, 8), (3, 1, 3, 3), 3, 1, 2, 3),  # depthwise, stride 3, dilation 2
    ((2, 2, 6, 5), (6, 1, 3, 3), (1, 2), 1, 1, 2),  # channel multiplier 3
    ((2, 5, 4, 4), (3, 5, 1, 1), 1, 0, 1, 1),  # pointwise
    ((2, 5, 5, 5), (3, 5, 1, 1), 2, 0, 1, 1),
    ((1, 2, 3, 3), (2, 2, 1, 1), 1, 2, 1, 1),  # padding beyond the kernel's reach
    ((1, 1, 6, 6), (5, 1, 3, 3), 1, 1, 1, 1),  # one input channel: GEMM path, not depthwise
]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation, groups", CONV_CONFIGS)
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv2d_matches_direct_sum(x_shape, w_shape, stride, padding, dilation, groups, with_bias):
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0]) if with_bias else None
    out = F.conv2d(Tensor(x), Tensor(w), None if b is None else Tensor(b), stride, padding, dilation, groups)
    expected = reference_conv2d(x, w, b, stride, padding, dilation, groups)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation, groups", CONV_CONFIGS)
def test_conv2d_gradients_are_the_adjoint(x_shape, w_shape, stride, padding, dilation, groups):
    """<g, conv(x, w)> is bilinear: its gradient in x is the map x -> <g, conv(x, w)> itself."""
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    tx, tw, tb = leaf(x), leaf(w), leaf(b)
    out = F.conv2d(tx, tw, tb, stride, padding, dilation, groups)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    loss = float(np.sum(g * out.numpy()))
    # Linear in x and in w: <grad_x, x> = <g, conv(x, w, no bias)> = <grad_w, w>; <grad_b, b> = <g, b>.
    no_bias = float(np.sum(g * reference_conv2d(x, w, None, stride, padding, dilation, groups)))
    assert np.isclose(np.sum(tx.grad.numpy() * x), no_bias, rtol=1e-9)
    assert np.isclose(np.sum(tw.grad.numpy() * w), no_bias, rtol=1e-9)
    assert np.isclose(np.sum(tb.grad.numpy() * b) + no_bias, loss, rtol=1e-9)


def test_conv2d_output_shape_formula():
    x = Tensor(np.zeros((2, 3, 11, 9), dtype=np.float32))
    for k, s, p, d in itertools.product([1, 2, 3], [1, 2, 3], [0, 1, 2], [1, 2]):
        if d * (k - 1) + 1 > 9 + 2 * p:
            continue
        w = Tensor(np.zeros((4, 3, k, k), dtype=np.float32))
        out = F.conv2d(x, w, stride=s, padding=p, dilation=d)
        assert out.shape == (2, 4, (11 + 2 * p - d * (k - 1) - 1) // s + 1, (9 + 2 * p - d * (k - 1) - 1) // s + 1)


def test_conv2d_string_padding():
    x, w = Tensor(rng.standard_normal((1, 2, 6, 7))), Tensor(rng.standard_normal((3, 2, 3, 5)))
    assert F.conv2d(x, w, padding="same").shape == (1, 3, 6, 7)
    assert F.conv2d(x, w, padding="same", dilation=2).shape == (1, 3, 6, 7)
    assert F.conv2d(x, w, padding="valid").shape == (1, 3, 4, 3)
    np.testing.assert_allclose(F.conv2d(x, w, padding="same").numpy(), F.conv2d(x, w, padding=(1, 2)).numpy())


def test_conv2d_float32_stays_float32():
    x = leaf(rng.standard_normal((2, 4, 6, 6)).astype(np.float32))
    for w_shape, groups in [((6, 2, 3, 3), 2), ((4, 1, 3, 3), 4), ((3, 4, 1, 1), 1)]:
        x.grad = None
        w, b = leaf(rng.standard_normal(w_shape).astype(np.float32)), leaf(np.zeros(w_shape[0], np.float32))
        out = F.conv2d(x, w, b, padding=w_shape[2] // 2, groups=groups)
        assert out.dtype == np.float32
        out.sum().backward()
        assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32


def test_conv2d_skips_gradients_nobody_needs(monkeypatch):
    """The first layer's input does not require grad: no input gradient is computed."""
    x = Tensor(rng.standard_normal((2, 3, 6, 6)))
    w = leaf(rng.standard_normal((4, 3, 3, 3)))
    calls = []
    original = conv_module.col2im
    monkeypatch.setattr(conv_module, "col2im", lambda *a, **k: calls.append(1) or original(*a, **k))
    F.conv2d(x, w, stride=2, padding=1).sum().backward()
    assert x.grad is None and w.grad is not None and not calls
    x2 = leaf(x.numpy())
    F.conv2d(x2, Tensor(w.numpy()), stride=2, padding=1).sum().backward()  # weight frozen
    assert x2.grad is not None and calls


@pytest.mark.parametrize("w_shape, groups, stride", [((4, 3, 3, 3), 1, 1), ((4, 3, 3, 3), 1, 2), ((6, 1, 3, 3), 3, 2)])
def test_conv2d_one_gradient_at_a_time_matches_both(w_shape, groups, stride):
    x, w = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal(w_shape)
    g = rng.standard_normal(F.conv2d(Tensor(x), Tensor(w), stride=stride, padding=1, groups=groups).shape)
    both_x, both_w = leaf(x), leaf(w)
    F.conv2d(both_x, both_w, stride=stride, padding=1, groups=groups).backward(g)
    only_x, only_w = leaf(x), leaf(w)
    F.conv2d(only_x, Tensor(w), stride=stride, padding=1, groups=groups).backward(g)
    F.conv2d(Tensor(x), only_w, stride=stride, padding=1, groups=groups).backward(g)
    np.testing.assert_allclose(only_x.grad.numpy(), both_x.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(only_w.grad.numpy(), both_w.grad.numpy(), rtol=1e-12)


def test_conv2d_without_bias_has_two_inputs_and_bias_gradient():
    x, w, b = leaf(rng.standard_normal((1, 2, 4, 4))), leaf(rng.standard_normal((3, 2, 3, 3))), leaf(np.zeros(3))
    with trace() as records:
        F.conv2d(x, w)
    assert [len(r.inputs) for r in records if r.function is Conv2d] == [2]
    out = F.conv2d(x, w, b, padding=1)
    out.backward(np.ones(out.shape))
    np.testing.assert_allclose(b.grad.numpy(), np.full(3, 16.0))


def test_conv2d_under_no_grad_records_nothing():
    x, w = leaf(rng.standard_normal((1, 2, 4, 4))), leaf(rng.standard_normal((3, 2, 3, 3)))
    with no_grad():
        out = F.conv2d(x, w)
    assert out.grad_fn is None and not out.requires_grad


def test_conv2d_backward_twice_with_retain_graph():
    """Buffers reused inside backward must not corrupt what a second backward needs."""
    for w_shape, groups in [((4, 3, 3, 3), 1), ((3, 1, 3, 3), 3)]:
        x, w = leaf(rng.standard_normal((2, 3, 5, 5))), leaf(rng.standard_normal(w_shape))
        out = F.conv2d(x, w, padding=1, groups=groups)
        g = rng.standard_normal(out.shape)
        out.backward(g, retain_graph=True)
        first_x, first_w = x.grad.numpy().copy(), w.grad.numpy().copy()
        out.backward(g)
        np.testing.assert_allclose(x.grad.numpy(), 2 * first_x)
        np.testing.assert_allclose(w.grad.numpy(), 2 * first_w)


def test_conv2d_results_do_not_share_the_workspace():
    """The columns live in a reused per-thread buffer; no result may alias it."""
    x1, x2 = leaf(rng.standard_normal((2, 3, 6, 6))), leaf(rng.standard_normal((2, 3, 6, 6)))
    w = leaf(rng.standard_normal((4, 3, 3, 3)))
    y1 = F.conv2d(x1, w, stride=2, padding=1)
    kept = y1.numpy().copy()
    y1.sum().backward()
    grads = x1.grad.numpy().copy(), w.grad.numpy().copy()
    F.conv2d(x2, w, padding=1).sum().backward()
    F.conv2d(x2, w, stride=2, padding=1).sum().backward()
    np.testing.assert_array_equal(y1.numpy(), kept)
    np.testing.assert_array_equal(x1.grad.numpy(), grads[0])


def test_conv2d_accepts_non_contiguous_inputs():
    x = rng.standard_normal((2, 6, 3, 7)).transpose(0, 3, 2, 1)[:, ::2, :, :3]  # (2, 4, 3, 3), strided
    w = rng.standard_normal((3, 4, 6, 2)).transpose(2, 1, 0, 3)[::-2]  # (3, 4, 3, 2), strided
    assert not x.flags.c_contiguous and not w.flags.c_contiguous
    out = F.conv2d(Tensor(x), Tensor(w), padding=1)
    np.testing.assert_allclose(out.numpy(), reference_conv2d(x, w, padding=1), rtol=1e-10)
    wd = w[:, :1]  # depthwise over 3 of the channels
    out = F.conv2d(Tensor(x[:, :3]), Tensor(wd), padding=1, groups=3)
    np.testing.assert_allclose(out.numpy(), reference_conv2d(x[:, :3], wd, padding=1, groups=3), rtol=1e-10)


def test_depthwise_tiles_give_the_same_result(monkeypatch):
    """The depthwise loops run in tiles of images; tiny tiles must agree with one tile."""
    x = rng.standard_normal((5, 3, 7, 6))
    w = rng.standard_normal((6, 1, 3, 3))
    g = rng.standard_normal((5, 6, 4, 3))
    results = []
    for tile_bytes in (1 << 30, 1, 3840):  # one tile; tiles of one image; 2 + 2 + 1 images
        monkeypatch.setattr(conv_module, "DEPTHWISE_TILE_BYTES", tile_bytes)
        tx, tw = leaf(x), leaf(w)
        out = F.conv2d(tx, tw, stride=2, padding=1, groups=3)
        out.backward(g)
        results.append((out.numpy(), tx.grad.numpy(), tw.grad.numpy()))
    for tiled in results[1:]:
        for a, b in zip(results[0], tiled, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_conv2d_gradient_from_a_broadcast_sum():
    """y.sum() hands backward a stride-0 gradient of ones."""
    x, w = (
        leaf(rng.standard_normal((2, 3, 5, 5)).astype(np.float32)),
        leaf(rng.standard_normal((4, 3, 3, 3)).astype(np.float32)),
    )
    F.conv2d(x, w, padding=1).sum().backward()
    expected = reference_conv2d(
        np.ones((2, 4, 5, 5)), np.flip(w.numpy(), (2, 3)).transpose(1, 0, 2, 3).astype(np.float64), padding=1
    )
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------- conv2d errors
def conv_error(x_shape, w_shape, bias_shape=None, dtype=np.float64, **kwargs):
    x = Tensor(np.zeros(x_shape, dtype=dtype))
    w = Tensor(np.zeros(w_shape, dtype=np.float64 if dtype.__name__.startswith("int") else dtype))
    b = None if bias_shape is None else Tensor(np.zeros(bias_shape))
    return F.conv2d(x, w, b, **kwargs)


@pytest.mark.parametrize(
    "x_shape, w_shape, kwargs, error, match",
    [
        (
            (3, 5, 5),
            (2, 3, 3, 3),
            {},
            ValueError,
            r"conv2d: expected input of shape \(N, C, H, W\), got shape \(3, 5, 5\)",
        ),
        ((1, 3, 5, 5), (2, 3, 3), {}, ValueError, r"conv2d: expected weight .* got shape \(2, 3, 3\)"),
        (
            (1, 4, 5, 5),
            (2, 3, 3, 3),
            {},
            ValueError,
            r"input of shape \(1, 4, 5, 5\) has 4 channels, but weight of shape \(2, 3, 3, 3\)",
        ),
        ((1, 4, 5, 5), (3, 2, 3, 3), {"groups": 2}, ValueError, r"3 output channels, not divisible by groups=2"),
        ((1, 6, 5, 5), (3, 3, 3, 3), {"groups": 3}, ValueError, r"with groups=3 expects 9"),
        (
            (1, 3, 2, 5),
            (2, 3, 3, 3),
            {},
            ValueError,
            r"kernel of size \(3, 3\) .* larger than the padded input \(2, 5\)",
        ),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"dilation": 3}, ValueError, r"spans \(7, 7\), larger than the padded input"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"stride": 0}, ValueError, r"conv2d: stride must be positive, got \(0, 0\)"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"stride": (1, -1)}, ValueError, r"stride must be positive"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"dilation": 0}, ValueError, r"dilation must be positive"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"padding": -1}, ValueError, r"padding must be non-negative"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"groups": 0}, ValueError, r"groups must be a positive int"),
        (
            (1, 3, 5, 5),
            (2, 3, 3, 3),
            {"stride": (1, 2, 3)},
            ValueError,
            r"conv2d: expected stride to be a single integer value or a list of 2 values .* but got stride=\[1, 2, 3\]",
        ),
        (
            (1, 3, 5, 5),
            (2, 3, 3, 3),
            {"padding": 1.5},
            TypeError,
            r"conv2d\(\): argument 'padding' must be an int or a tuple of ints",
        ),
        (
            (1, 3, 5, 5),
            (2, 3, 3, 3),
            {"stride": True},
            TypeError,
            r"argument 'stride' must be an int or a tuple of ints",
        ),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"padding": "full"}, ValueError, r"'valid' or 'same'"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"padding": "same", "stride": 2}, ValueError, r"padding='same' needs stride 1"),
        ((1, 3, 5, 5), (2, 3, 2, 2), {"padding": "same"}, ValueError, r"asymmetric padding"),
    ],
)
def test_conv2d_errors(x_shape, w_shape, kwargs, error, match):
    with pytest.raises(error, match=match):
        conv_error(x_shape, w_shape, **kwargs)


def test_conv2d_bias_and_dtype_errors():
    with pytest.raises(ValueError, match=r"bias of shape \(3,\) does not match weight of shape \(2, 3, 3, 3\)"):
        conv_error((1, 3, 5, 5), (2, 3, 3, 3), bias_shape=(3,))
    with pytest.raises(TypeError, match=r"input \(float32\), weight \(float64\) .* same dtype"):
        F.conv2d(Tensor(np.zeros((1, 3, 5, 5), np.float32)), Tensor(np.zeros((2, 3, 3, 3))))
    with pytest.raises(TypeError, match=r"conv2d: input must be a floating-point array, got dtype int64"):
        F.conv2d(Tensor(np.zeros((1, 3, 5, 5), np.int64)), Tensor(np.zeros((2, 3, 3, 3))))


# ---------------------------------------------------------------------------- max pooling
MAX_POOL_CONFIGS = [
    # (x shape, kernel, stride, padding, dilation, ceil_mode)
    ((2, 3, 7, 7), 3, 2, 1, 1, False),
    ((2, 2, 6, 5), 2, 2, 0, 1, False),
    ((1, 2, 6, 8), 3, 2, 0, 1, True),
    ((1, 2, 5, 6), (2, 3), (1, 2), (1, 1), 1, True),
    ((1, 2, 7, 7), 3, 1, 1, 2, False),
    ((1, 1, 5, 5), 2, 3, 1, 1, True),
]


@pytest.mark.parametrize("x_shape, kernel, stride, padding, dilation, ceil_mode", MAX_POOL_CONFIGS)
@pytest.mark.parametrize("values", ["distinct", "ties"])
def test_max_pool2d_matches_pytorch_kernel(x_shape, kernel, stride, padding, dilation, ceil_mode, values):
    """Values and gradients, ties included: PyTorch sends a tie's gradient to the first
    maximum in window order."""
    if values == "distinct":
        x = rng.permutation(np.prod(x_shape)).reshape(x_shape) * 0.5
    else:
        x = rng.integers(0, 3, x_shape).astype(np.float64)
    tx = leaf(x)
    out = F.max_pool2d(tx, kernel, stride, padding, ceil_mode, dilation=dilation)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    expected, expected_grad = reference_max_pool2d(x, g, kernel, stride, padding, dilation, ceil_mode)
    np.testing.assert_array_equal(out.numpy(), expected)
    np.testing.assert_allclose(tx.grad.numpy(), expected_grad, rtol=1e-12, atol=1e-12)


def test_max_pool2d_tie_goes_to_first_in_window_order():
    x = leaf(np.array([[[[1.0, 5.0], [5.0, 5.0]]]]))
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[[[0.0, 1.0], [0.0, 0.0]]]])


def test_max_pool2d_nan_and_minus_infinity():
    x = np.arange(2 * 6 * 6, dtype=np.float64).reshape(1, 2, 6, 6)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = np.nan  # two NaNs in one window: the last one takes the gradient
    x[0, 1, :2, :2] = -np.inf  # a window of -inf next to the padding
    g = rng.standard_normal((1, 2, 4, 4))
    tx = leaf(x)
    out = F.max_pool2d(tx, 3, 2, 1, ceil_mode=True)
    out.backward(g)
    expected, expected_grad = reference_max_pool2d(x, g, 3, 2, 1, 1, True)
    np.testing.assert_array_equal(out.numpy(), expected)
    np.testing.assert_allclose(tx.grad.numpy(), expected_grad)


def test_max_pool2d_ceil_mode_sizes():
    x = Tensor(np.zeros((1, 1, 6, 6)))
    assert F.max_pool2d(x, 3, 2).shape == (1, 1, 2, 2)
    assert F.max_pool2d(x, 3, 2, ceil_mode=True).shape == (1, 1, 3, 3)
    # the last window would start in the right padding: dropped
    assert F.max_pool2d(Tensor(np.zeros((1, 1, 5, 5))), 2, 2, 1, ceil_mode=True).shape == (1, 1, 3, 3)
    assert F.max_pool2d(Tensor(np.zeros((1, 1, 4, 4))), 2, 3, 1, ceil_mode=True).shape == (1, 1, 2, 2)


def test_max_pool2d_float32_and_shape():
    x = leaf(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    out = F.max_pool2d(x, 3, 2, 1)
    assert out.shape == (2, 3, 4, 4) and out.dtype == np.float32
    out.sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.numpy().sum() == pytest.approx(2 * 3 * 16)


# ---------------------------------------------------------------------------- average pooling
AVG_POOL_CONFIGS = [
    # (x shape, kernel, stride, padding, ceil_mode)
    ((2, 2, 7, 7), 3, 2, 1, False),
    ((2, 2, 7, 6), 3, 2, 1, True),
    ((1, 2, 6, 6), 3, 2, 1, True),
    ((1, 2, 5, 6), (2, 3), (2, 1), (1, 1), True),
    ((2, 3, 4, 6), 2, None, 0, False),
    ((1, 1, 5, 5), 2, 3, 1, True),
]


@pytest.mark.parametrize("x_shape, kernel, stride, padding, ceil_mode", AVG_POOL_CONFIGS)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("divisor_override", [None, 5])
def test_avg_pool2d_matches_pytorch_divisors(
    x_shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override
):
    x = rng.standard_normal(x_shape)
    out = F.avg_pool2d(Tensor(x), kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    expected = reference_avg_pool2d(
        x, kernel, stride or kernel, padding, ceil_mode, count_include_pad, divisor_override
    )
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)


def test_avg_pool2d_gradient_is_the_adjoint():
    x = leaf(rng.standard_normal((2, 2, 7, 6)))
    out = F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    assert np.isclose(np.sum(x.grad.numpy() * x.numpy()), np.sum(g * out.numpy()))


def test_avg_pool2d_divisor_examples():
    x = Tensor(np.ones((1, 1, 3, 3)))
    # corner window: 4 of 9 elements inside the input
    assert F.avg_pool2d(x, 3, 1, 1).numpy()[0, 0, 0, 0] == pytest.approx(4 / 9)
    assert F.avg_pool2d(x, 3, 1, 1, count_include_pad=False).numpy()[0, 0, 0, 0] == pytest.approx(1.0)
    # ceil_mode: the last window runs past the padded input; only the padded part counts
    out = F.avg_pool2d(Tensor(np.ones((1, 1, 4, 4))), 3, 2, 1, ceil_mode=True)
    assert out.shape == (1, 1, 3, 3)
    assert out.numpy()[0, 0, 2, 2] == pytest.approx(1 / 4)  # 1 element; window clipped to 2x2


# ---------------------------------------------------------------------------- adaptive pooling
@pytest.mark.parametrize(
    "x_shape, output_size, expected_size",
    [
        ((2, 3, 5, 7), (3, 4), (3, 4)),
        ((2, 3, 5, 7), 2, (2, 2)),
        ((2, 3, 5, 7), (None, 3), (5, 3)),
        ((2, 3, 5, 7), (4, None), (4, 7)),
        ((2, 3, 6, 4), (3, 2), (3, 2)),
        ((2, 3, 6, 4), 1, (1, 1)),
        ((1, 2, 3, 3), (5, 4), (5, 4)),
        ((1, 2, 7, 7), (7, 7), (7, 7)),
    ],
)
def test_adaptive_avg_pool2d_windows(x_shape, output_size, expected_size):
    x = leaf(rng.standard_normal(x_shape))
    out = F.adaptive_avg_pool2d(x, output_size)
    assert out.shape == (*x_shape[:2], *expected_size)
    np.testing.assert_allclose(out.numpy(), reference_adaptive_avg_pool2d(x.numpy(), *expected_size), rtol=1e-12)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    assert np.isclose(np.sum(x.grad.numpy() * x.numpy()), np.sum(g * out.numpy()))


def test_adaptive_avg_pool2d_float32():
    x = leaf(rng.standard_normal((2, 3, 7, 5)).astype(np.float32))
    for size in (1, (7, 5), (3, 2)):
        x.grad = None
        out = F.adaptive_avg_pool2d(x, size)
        assert out.dtype == np.float32
        out.sum().backward()
        assert x.grad.dtype == np.float32
        assert x.grad.numpy().sum() == pytest.approx(2 * 3 * np.prod(out.shape[2:]), rel=1e-5)


# ---------------------------------------------------------------------------- pooling errors
@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda x: F.max_pool2d(x, 3, 1, 2),
            ValueError,
            r"max_pool2d: padding \(2, 2\) must be at most half the kernel size \(3, 3\)",
        ),
        (
            lambda x: F.avg_pool2d(x, (2, 4), 1, (1, 3)),
            ValueError,
            r"avg_pool2d: padding \(1, 3\) must be at most half",
        ),
        (lambda x: F.max_pool2d(x, 0), ValueError, r"kernel_size must be positive"),
        (lambda x: F.max_pool2d(x, 2, 0), ValueError, r"stride must be positive"),
        (lambda x: F.max_pool2d(x, 2, dilation=0), ValueError, r"dilation must be positive"),
        (lambda x: F.avg_pool2d(x, 2, padding=-1), ValueError, r"padding must be non-negative"),
        (
            lambda x: F.max_pool2d(x, 5),
            ValueError,
            r"max_pool2d: input of shape \(1, 2, 4, 4\) is too small for kernel \(5, 5\)",
        ),
        (lambda x: F.avg_pool2d(x, (1, 2, 3)), ValueError, r"avg_pool2d: expected kernel_size to be a single integer"),
        (
            lambda x: F.max_pool2d(x, 2.0),
            TypeError,
            r"max_pool2d\(\): argument 'kernel_size' must be an int or a tuple",
        ),
        (lambda x: F.avg_pool2d(x, 2, divisor_override=0), ValueError, r"divisor_override must be a positive int"),
        (
            lambda x: F.max_pool2d(x[0], 2),
            ValueError,
            r"max_pool2d: expected input of shape \(N, C, H, W\), got shape \(2, 4, 4\)",
        ),
        (lambda x: F.avg_pool2d(x[0], 2), ValueError, r"avg_pool2d: expected input of shape"),
        (lambda x: F.adaptive_avg_pool2d(x[0], 2), ValueError, r"adaptive_avg_pool2d: expected input of shape"),
        (lambda x: F.adaptive_avg_pool2d(x, 0), ValueError, r"output_size entries must be positive ints or None"),
        (lambda x: F.adaptive_avg_pool2d(x, (1, 2, 3)), TypeError, r"output_size must be an int or a pair"),
    ],
)
def test_pooling_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(Tensor(np.zeros((1, 2, 4, 4))))


def test_pooling_rejects_integer_input():
    x = Tensor(np.zeros((1, 1, 4, 4), dtype=np.int64))
    for call in (lambda: F.max_pool2d(x, 2), lambda: F.avg_pool2d(x, 2), lambda: F.adaptive_avg_pool2d(x, 2)):
        with pytest.raises(TypeError, match="must be a floating-point array, got dtype int64"):
            call()


def test_pooling_functions_are_recorded_with_their_attributes():
    x = leaf(rng.standard_normal((1, 1, 6, 6)))
    with trace() as records:
        F.max_pool2d(x, 3, 2, 1)
        F.avg_pool2d(x, 2)
        F.adaptive_avg_pool2d(x, (2, None))
    assert [r.function for r in records] == [MaxPool2d, AvgPool2d, AdaptiveAvgPool2d]
    assert records[0].attrs["kernel_size"] == (3, 3) and records[0].attrs["stride"] == (2, 2)
    assert records[1].attrs["stride"] == (2, 2)
    assert records[2].attrs["output_size"] == (2, 6)
