"""Parity with torch.nn.functional: conv2d and the pooling ops, forward and every gradient.

Each configuration runs the same float64 inputs through both libraries, pulls the output
back with the same random cotangent, and compares the output and the gradient of every
input (rtol 1e-7); a float32 pass checks dtypes and agreement at float32's precision.
"""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kinone.autograd import Tensor  # noqa: E402
from kinone.nn import functional as F  # noqa: E402

TF = torch.nn.functional
RTOL64, ATOL64 = 1e-7, 1e-10
RTOL32, ATOL32 = 1e-4, 1e-5


def run_both(kinone_fn, torch_fn, arrays, seed=0):
    """Outputs and input gradients of both libraries for the same inputs and cotangent."""
    k_inputs = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    t_inputs = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    k_out, t_out = kinone_fn(*k_inputs), torch_fn(*t_inputs)
    cotangent = np.random.default_rng(seed).standard_normal(tuple(t_out.shape)).astype(arrays[0].dtype)
    k_out.backward(cotangent)
    t_out.backward(torch.tensor(cotangent))
    k_grads = [t.grad.numpy() if t.grad is not None else None for t in k_inputs]
    t_grads = [t.grad.numpy() if t.grad is not None else None for t in t_inputs]
    return (k_out.numpy(), k_grads), (t_out.detach().numpy(), t_grads)


def assert_parity(kinone_fn, torch_fn, arrays, rtol, atol):
    (k_out, k_grads), (t_out, t_grads) = run_both(kinone_fn, torch_fn, arrays)
    assert k_out.shape == t_out.shape
    assert k_out.dtype == t_out.dtype == arrays[0].dtype
    np.testing.assert_allclose(k_out, t_out, rtol=rtol, atol=atol)
    for i, (k, t) in enumerate(zip(k_grads, t_grads, strict=True)):
        assert k is not None and t is not None, f"input {i} has no gradient"
        assert k.dtype == t.dtype == arrays[i].dtype
        np.testing.assert_allclose(k, t, rtol=rtol, atol=atol, err_msg=f"gradient of input {i}")


# ---------------------------------------------------------------------------- conv2d
def conv_configs():
    """(x shape, weight shape, stride, padding, dilation, groups) over a grid of settings."""
    configs = []
    channel_settings = [
        (3, 4, 1),  # dense
        (4, 6, 2),  # grouped
        (4, 4, 4),  # depthwise
        (3, 6, 3),  # depthwise, channel multiplier 2
        (1, 4, 1),  # one input channel
    ]
    for (c, o, g), kernel, stride, padding, dilation in itertools.product(
        channel_settings, [(1, 1), (3, 3), (2, 3), (5, 5)], [1, 2, (2, 1)], [0, 1, (2, 1)], [1, 2]
    ):
        reach = [d * (k - 1) + 1 for d, k in zip((dilation, dilation), kernel, strict=True)]
        pad = padding if isinstance(padding, tuple) else (padding, padding)
        if reach[0] > 9 + 2 * pad[0] or reach[1] > 8 + 2 * pad[1]:
            continue
        configs.append(((2, c, 9, 8), (o, c // g, *kernel), stride, padding, dilation, g))
    return configs


CONV_CONFIGS = conv_configs()


def conv_id(config):
    x, w, s, p, d, g = config
    return f"x{x[1]}-w{'x'.join(map(str, w))}-s{s}-p{p}-d{d}-g{g}".replace(" ", "")


@pytest.mark.parametrize("config", CONV_CONFIGS, ids=[conv_id(c) for c in CONV_CONFIGS])
def test_conv2d_float64(config):
    x_shape, w_shape, stride, padding, dilation, groups = config
    rng = np.random.default_rng(zlib.crc32(conv_id(config).encode()))
    arrays = [rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])]
    assert_parity(
        lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups),
        lambda x, w, b: TF.conv2d(x, w, b, stride, padding, dilation, groups),
        arrays,
        RTOL64,
        ATOL64,
    )


@pytest.mark.parametrize(
    "config",
    [
        ((4, 16, 12, 12), (32, 16, 3, 3), 1, 1, 1, 1),
        ((4, 16, 12, 12), (32, 16, 3, 3), 2, 1, 1, 1),
        ((4, 16, 12, 12), (32, 16, 1, 1), 1, 0, 1, 1),
        ((4, 16, 12, 12), (32, 4, 3, 3), 1, 1, 1, 4),
        ((4, 16, 12, 12), (16, 1, 3, 3), 1, 1, 1, 16),
        ((4, 16, 13, 13), (16, 1, 5, 5), 2, 2, 1, 16),
        ((4, 3, 16, 16), (8, 3, 7, 7), 2, 3, 1, 1),
    ],
    ids=conv_id,
)
def test_conv2d_float32(config):
    x_shape, w_shape, stride, padding, dilation, groups = config
    rng = np.random.default_rng(1)
    fan_in = np.prod(w_shape[1:])
    arrays = [
        rng.standard_normal(x_shape).astype(np.float32),
        (rng.standard_normal(w_shape) / np.sqrt(fan_in)).astype(np.float32),
        rng.standard_normal(w_shape[0]).astype(np.float32),
    ]
    assert_parity(
        lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups),
        lambda x, w, b: TF.conv2d(x, w, b, stride, padding, dilation, groups),
        arrays,
        RTOL32,
        ATOL32,
    )


@pytest.mark.parametrize("padding", ["same", "valid", 0, (1, 2)])
def test_conv2d_without_bias_and_string_padding(padding):
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 5))]
    assert_parity(
        lambda x, w: F.conv2d(x, w, padding=padding, dilation=(2, 1)),
        lambda x, w: TF.conv2d(x, w, padding=padding, dilation=(2, 1)),
        arrays,
        RTOL64,
        ATOL64,
    )


# ---------------------------------------------------------------------------- pooling
def pool_settings():
    """(kernel, stride, padding, ceil_mode) with padding at most half the kernel (above that
    both libraries raise; see the last test)."""
    settings = []
    for kernel, stride, padding, ceil_mode in itertools.product(
        [1, 2, 3, (2, 3)], [None, 1, 2, (1, 2), 3], [0, 1, (1, 0)], [False, True]
    ):
        k = kernel if isinstance(kernel, tuple) else (kernel, kernel)
        p = padding if isinstance(padding, tuple) else (padding, padding)
        if p[0] <= k[0] // 2 and p[1] <= k[1] // 2:
            settings.append((kernel, stride, padding, ceil_mode))
    return settings


POOL_SETTINGS = pool_settings()


@pytest.mark.parametrize("kernel, stride, padding, ceil_mode", POOL_SETTINGS)
@pytest.mark.parametrize("dilation", [1, 2])
def test_max_pool2d_float64(kernel, stride, padding, ceil_mode, dilation):
    rng = np.random.default_rng(3)
    x = rng.permutation(2 * 3 * 9 * 8).reshape(2, 3, 9, 8) / 7.0  # distinct values
    assert_parity(
        lambda t: F.max_pool2d(t, kernel, stride, padding, ceil_mode, dilation=dilation),
        lambda t: TF.max_pool2d(t, kernel, stride, padding, dilation, ceil_mode),
        [x],
        RTOL64,
        ATOL64,
    )


@pytest.mark.parametrize(
    "kernel, stride, padding, ceil_mode",
    [(3, 2, 1, False), (2, 2, 0, True), (3, 1, 1, False), (2, 1, 1, True), ((3, 2), (2, 1), (1, 1), True)],
)
def test_max_pool2d_ties_follow_torch(kernel, stride, padding, ceil_mode):
    """Few distinct values: most windows have tied maxima; the gradient must land where
    PyTorch puts it (the first maximum in window order)."""
    rng = np.random.default_rng(4)
    x = rng.integers(0, 3, (2, 3, 9, 8)).astype(np.float64)
    (k_out, (k_grad,)), (t_out, (t_grad,)) = run_both(
        lambda t: F.max_pool2d(t, kernel, stride, padding, ceil_mode),
        lambda t: TF.max_pool2d(t, kernel, stride, padding, 1, ceil_mode),
        [x],
    )
    np.testing.assert_array_equal(k_out, t_out)
    np.testing.assert_allclose(k_grad, t_grad, rtol=1e-12, atol=1e-12)


def test_max_pool2d_nan_and_minus_infinity_follow_torch():
    x = np.arange(2 * 2 * 7 * 7, dtype=np.float64).reshape(2, 2, 7, 7)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = np.nan
    x[0, 1, :3, :3] = -np.inf
    x[1, 0] = -np.inf
    (k_out, (k_grad,)), (t_out, (t_grad,)) = run_both(
        lambda t: F.max_pool2d(t, 3, 2, 1, True), lambda t: TF.max_pool2d(t, 3, 2, 1, 1, True), [x]
    )
    np.testing.assert_array_equal(k_out, t_out)
    np.testing.assert_allclose(k_grad, t_grad)


@pytest.mark.parametrize("kernel, stride, padding, ceil_mode", POOL_SETTINGS)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d_float64(kernel, stride, padding, ceil_mode, count_include_pad):
    x = np.random.default_rng(5).standard_normal((2, 3, 9, 8))
    assert_parity(
        lambda t: F.avg_pool2d(t, kernel, stride, padding, ceil_mode, count_include_pad),
        lambda t: TF.avg_pool2d(t, kernel, stride, padding, ceil_mode, count_include_pad),
        [x],
        RTOL64,
        ATOL64,
    )


def test_avg_pool2d_divisor_override():
    x = np.random.default_rng(6).standard_normal((2, 3, 7, 7))
    assert_parity(
        lambda t: F.avg_pool2d(t, 3, 2, 1, True, False, divisor_override=4),
        lambda t: TF.avg_pool2d(t, 3, 2, 1, True, False, divisor_override=4),
        [x],
        RTOL64,
        ATOL64,
    )


ADAPTIVE_SIZES = [1, 2, 3, (3, 4), (None, 2), (4, None), (5, 7), (7, 5), (9, 8), (11, 10), (2, 8)]


@pytest.mark.parametrize("output_size", ADAPTIVE_SIZES, ids=str)
@pytest.mark.parametrize("input_hw", [(9, 8), (6, 4), (5, 7)])
def test_adaptive_avg_pool2d_float64(output_size, input_hw):
    x = np.random.default_rng(7).standard_normal((2, 3, *input_hw))
    assert_parity(
        lambda t: F.adaptive_avg_pool2d(t, output_size),
        lambda t: TF.adaptive_avg_pool2d(t, output_size),
        [x],
        RTOL64,
        ATOL64,
    )


@pytest.mark.parametrize(
    "kinone_fn, torch_fn",
    [
        (lambda t: F.max_pool2d(t, 3, 2, 1), lambda t: TF.max_pool2d(t, 3, 2, 1)),
        (lambda t: F.max_pool2d(t, 2, ceil_mode=True), lambda t: TF.max_pool2d(t, 2, ceil_mode=True)),
        (lambda t: F.avg_pool2d(t, 3, 2, 1, True, False), lambda t: TF.avg_pool2d(t, 3, 2, 1, True, False)),
        (lambda t: F.avg_pool2d(t, 2), lambda t: TF.avg_pool2d(t, 2)),
        (lambda t: F.adaptive_avg_pool2d(t, 1), lambda t: TF.adaptive_avg_pool2d(t, 1)),
        (lambda t: F.adaptive_avg_pool2d(t, (3, 5)), lambda t: TF.adaptive_avg_pool2d(t, (3, 5))),
        (lambda t: F.adaptive_avg_pool2d(t, (7, 2)), lambda t: TF.adaptive_avg_pool2d(t, (7, 2))),
    ],
)
def test_pooling_float32(kinone_fn, torch_fn):
    x = np.random.default_rng(8).standard_normal((4, 8, 14, 14)).astype(np.float32)
    assert_parity(kinone_fn, torch_fn, [x], RTOL32, ATOL32)


def test_pooling_and_conv_reject_what_torch_rejects():
    """Kernel larger than the padded input, padding above half the kernel, output too small."""
    x = np.zeros((1, 2, 4, 4))
    cases = [
        (lambda t: F.conv2d(t, Tensor(np.zeros((1, 2, 5, 5)))), lambda t: TF.conv2d(t, torch.zeros(1, 2, 5, 5))),
        (lambda t: F.max_pool2d(t, 2, 1, 2), lambda t: TF.max_pool2d(t, 2, 1, 2)),
        (lambda t: F.avg_pool2d(t, 5), lambda t: TF.avg_pool2d(t, 5)),
        (lambda t: F.max_pool2d(t, 3, dilation=2), lambda t: TF.max_pool2d(t, 3, dilation=2)),
    ]
    for kinone_fn, torch_fn in cases:
        with pytest.raises(RuntimeError):
            torch_fn(torch.tensor(x))
        with pytest.raises(ValueError):
            kinone_fn(Tensor(x))
