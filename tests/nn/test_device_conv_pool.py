"""Convolution and pooling on the stand-in CUDA device (kinone.autograd.standin): the numbers
equal the CPU's on every route (the gradcheck samples are small, so the routes taken only
by larger images are checked here), results stay on the device and keep float32, and max
pooling breaks ties, and routes NaN windows, as on the CPU.
"""

from __future__ import annotations

import numpy as np
import pytest

import kinone.nn as nn
from kinone.autograd import Tensor, backend
from kinone.autograd.testing import device_parity
from kinone.nn import functional as F
from kinone.nn.functional import conv as conv_module

rng = np.random.default_rng(7)


def r(*shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


@pytest.fixture(autouse=True)
def standin_cuda():
    with backend.use_standin_cuda():
        yield


def _on(device, *arrays):
    """Leaves on `device` that require grad."""
    leaves = []
    for a in arrays:
        leaf = Tensor(backend.to_device(a.copy(), backend.Device(device)))
        leaf.requires_grad = True
        leaves.append(leaf)
    return leaves


def test_conv_layer_output_and_weight_gradient_on_cuda_equal_the_cpu():
    x = r(2, 3, 12, 12, dtype=np.float32)
    cpu_layer = nn.Conv2d(3, 8, 3, padding=1, bias=True)
    cuda_layer = nn.Conv2d(3, 8, 3, padding=1, bias=True)
    cuda_layer.load_state_dict(cpu_layer.state_dict())
    cuda_layer.cuda()
    assert cuda_layer.weight.is_cuda

    results = []
    for layer, device in ((cpu_layer, "cpu"), (cuda_layer, "cuda")):
        (xt,) = _on(device, x)
        y = layer(xt)
        (y * y).sum().backward()
        results.append((y, layer.weight.grad, layer.bias.grad, xt.grad))
    for cpu_value, cuda_value in zip(*results):
        assert cuda_value.is_cuda
        np.testing.assert_allclose(cuda_value.cpu().numpy(), cpu_value.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, x_shape, w_shape",
    [
        # more than 64 output pixels per image: the batched GEMMs of forward and of both gradients
        ({"padding": 1}, (2, 3, 10, 10), (4, 3, 3, 3)),
        ({"stride": 2, "padding": 1}, (2, 3, 18, 17), (4, 3, 3, 3)),  # col2im with 81 pixels
        ({"padding": 2, "dilation": 2, "groups": 2}, (2, 4, 9, 9), (6, 2, 3, 3)),
        ({}, (2, 4, 9, 9), (5, 4, 1, 1)),  # pointwise, 81 pixels
    ],
    ids=["stride1", "stride2-col2im", "dilated-groups", "pointwise"],
)
def test_conv_routes_for_larger_images_match_the_cpu(kwargs, x_shape, w_shape):
    device_parity(lambda x, w: F.conv2d(x, w, **kwargs), [r(*x_shape), r(*w_shape)])


def test_depthwise_with_column_weight_blocks_matches_the_cpu(monkeypatch):
    # Above DEPTHWISE_BLOCK_BYTES the weights are broadcast as (C, m, 1) columns instead of blocks.
    monkeypatch.setattr(conv_module, "DEPTHWISE_BLOCK_BYTES", 0)
    device_parity(
        lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1, groups=3), [r(2, 3, 9, 9), r(6, 1, 3, 3), r(6)]
    )


@pytest.mark.parametrize(
    "fn",
    [
        lambda x, w: F.conv2d(x, w, padding=1),
        lambda x, w: F.conv2d(x, w, stride=2, padding=1),
        lambda x, w: F.conv2d(x, w[:4, :1], padding=1, groups=4),
        lambda x, w: F.max_pool2d(x, 3, 2, 1) * w.sum(),
        lambda x, w: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False) * w.sum(),
        lambda x, w: F.adaptive_avg_pool2d(x, (3, 5)) * w.sum(),
        lambda x, w: F.adaptive_avg_pool2d(x, 1) * w.sum(),
    ],
    ids=["conv", "conv-col2im", "depthwise", "max_pool", "avg_pool", "adaptive", "global"],
)
def test_float32_stays_float32_and_on_the_device(fn):
    x, w = _on("cuda", r(2, 4, 8, 10, dtype=np.float32), r(4, 4, 3, 3, dtype=np.float32))
    y = fn(x, w)
    assert y.is_cuda and y.dtype == np.float32
    y.sum().backward()
    for grad in (x.grad, w.grad):
        assert grad.is_cuda and grad.dtype == np.float32


def _max_pool_input_grad(x, device):
    (xt,) = _on(device, x)
    y = F.max_pool2d(xt, 2, 1)
    y.sum().backward()
    return y.cpu().numpy(), xt.grad.cpu().numpy()


def test_max_pool_ties_go_to_the_first_maximum_on_both_devices():
    # Every 2x2 window (stride 1) of a constant image is a four-way tie: each goes to its
    # top-left element, which receives one gradient per window it starts.
    x = np.ones((1, 2, 3, 4))
    expected = np.zeros_like(x)
    expected[:, :, :2, :3] = 1.0
    for device in ("cpu", "cuda"):
        y, grad = _max_pool_input_grad(x, device)
        np.testing.assert_array_equal(y, np.ones((1, 2, 2, 3)))
        np.testing.assert_array_equal(grad, expected)


def test_max_pool_nan_windows_route_to_their_last_nan_on_both_devices():
    # On CUDA the NaN pass always runs (no host sync); it must route exactly what the CPU does.
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 0, 0] = x[0, 0, 1, 1] = np.nan
    results = [_max_pool_input_grad(x, device) for device in ("cpu", "cuda")]
    np.testing.assert_array_equal(results[1][0], results[0][0])
    np.testing.assert_array_equal(results[1][1], results[0][1])
    # the window at (0, 0) holds both NaNs: its gradient goes to the last one, (1, 1)
    assert results[1][1][0, 0, 0, 0] == 0.0
    assert results[1][1][0, 0, 1, 1] > 0.0


def test_avg_pool_divisor_per_output_is_moved_to_the_device():
    # count_include_pad=False with padding gives a divisor per output, built on the host.
    device_parity(lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False), [r(2, 3, 9, 8)])
