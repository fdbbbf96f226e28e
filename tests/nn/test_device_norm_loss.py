"""Batch norm, dropout, erf and the losses on a CUDA device (the stand-in device of CI): running
statistics stay on the device, dropout draws from the device's generator, losses are 0-d device
tensors. (tests/nn/test_device_standin.py checks every sample's numbers against the CPU.)"""

from __future__ import annotations

import numpy as np
import pytest

from kinone import nn
from kinone.autograd import Tensor, backend, default_generator, manual_seed
from kinone.nn import functional as F
from kinone.nn.functional.activation import erf_values

rng = np.random.default_rng(13)


@pytest.fixture(autouse=True)
def standin_cuda():
    with backend.use_standin_cuda():
        yield


def on_device(array) -> Tensor:
    return Tensor(backend.to_device(np.array(array), backend.Device("cuda")))


def assert_on_device(t: Tensor) -> None:
    assert t.device == "cuda:0" and backend.is_cuda_array(t.data), f"{t.device}, {type(t.data).__name__}"


# ---------------------------------------------------------------------------- batch norm
def test_batch_norm_module_in_training_updates_its_running_stats_on_the_device():
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32) * 2 + 1
    cpu = nn.BatchNorm2d(3)
    device = nn.BatchNorm2d(3).to("cuda")
    arrays = {name: b.data for name, b in device.named_buffers()}
    for _ in range(2):
        cpu(Tensor(x))
        device(on_device(x))
    for name, buffer in device.named_buffers():
        assert_on_device(buffer)
        assert buffer.data is arrays[name], f"{name} was replaced, not updated in place"
        np.testing.assert_allclose(buffer.numpy(), dict(cpu.named_buffers())[name].numpy(), rtol=1e-6, atol=1e-7)
    assert not np.array_equal(device.running_mean.numpy(), np.zeros(3))


def test_functional_batch_norm_updates_device_running_stats_in_place():
    x = rng.standard_normal((6, 2, 4))
    mean, var = on_device(np.zeros(2)), on_device(np.ones(2))
    mean_array = mean.data
    y = F.batch_norm(on_device(x), mean, var, training=True, momentum=0.5)
    assert_on_device(y)
    assert_on_device(mean)
    assert_on_device(var)
    assert mean.data is mean_array
    np.testing.assert_allclose(mean.numpy(), 0.5 * x.mean(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(var.numpy(), 0.5 + 0.5 * x.var(axis=(0, 2), ddof=1), rtol=1e-12)


def test_batch_norm_eval_on_the_device():
    x = rng.standard_normal((3, 2, 4)).astype(np.float32)
    module = nn.BatchNorm1d(2).to("cuda").eval()
    module.running_mean.data[...] = backend.to_device(np.array([0.5, -1.0], dtype=np.float32), "cuda")
    y = module(on_device(x))
    assert_on_device(y)
    np.testing.assert_allclose(y.numpy(), (x - np.array([0.5, -1.0])[:, None]) / np.sqrt(1 + 1e-5), rtol=1e-5)


# ---------------------------------------------------------------------------- dropout
def dropout_mask(x: Tensor, p: float):
    y = F.dropout(x, p=p, training=True)
    (mask,) = y.grad_fn.saved
    return y, mask


def test_dropout_on_the_device_draws_its_mask_there_reproducibly_with_manual_seed():
    x = on_device(rng.standard_normal((8, 16)))
    x.requires_grad = True
    manual_seed(7)
    y1, mask1 = dropout_mask(x, 0.3)
    assert_on_device(y1)
    assert backend.is_cuda_array(mask1)
    manual_seed(7)
    default_generator().random(100)  # the CPU's generator is not the device's
    y2, mask2 = dropout_mask(x, 0.3)
    np.testing.assert_array_equal(mask2.get(), mask1.get())
    np.testing.assert_array_equal(y2.numpy(), y1.numpy())
    _, mask3 = dropout_mask(x, 0.3)  # the device generator moves on
    assert not np.array_equal(mask3.get(), mask1.get())
    y1.sum().backward()
    assert_on_device(x.grad)
    np.testing.assert_array_equal(x.grad.numpy(), mask1.get())


def test_dropout_of_everything_on_the_device():
    x = on_device(rng.standard_normal((3, 4)).astype(np.float32))
    x.requires_grad = True
    y, mask = dropout_mask(x, 1.0)
    assert backend.is_cuda_array(mask)
    assert_on_device(y)
    assert not y.numpy().any()


def test_dropout_on_the_cpu_draws_what_it_drew_before_devices():
    x = Tensor(np.ones((5, 7), dtype=np.float32))
    manual_seed(11)
    y = F.dropout(x, p=0.25, training=True)
    keep = np.random.default_rng(11).random((5, 7), dtype=np.float32) >= np.float32(0.25)
    np.testing.assert_array_equal(y.numpy(), np.where(keep, np.float32(1 / 0.75), 0))


# ---------------------------------------------------------------------------- erf, GELU
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_erf_and_gelu_on_the_device_give_the_cpu_numbers(dtype):
    x = (rng.standard_normal(20) * 2).astype(dtype)
    device_erf = erf_values(backend.to_device(x, "cuda"))
    assert backend.is_cuda_array(device_erf) and device_erf.dtype == dtype
    np.testing.assert_array_equal(device_erf.get(), erf_values(x))
    y = F.gelu(on_device(x))
    assert_on_device(y)
    np.testing.assert_array_equal(y.numpy(), F.gelu(Tensor(x)).numpy())


# ---------------------------------------------------------------------------- losses
def class_target(classes, *shape):
    return on_device(rng.integers(0, classes, shape))


LOSSES = {
    "cross_entropy": lambda x, r: F.cross_entropy(x, class_target(4, 6), reduction=r),
    "cross_entropy_smoothed_weighted": lambda x, r: F.cross_entropy(
        x, class_target(4, 6), weight=on_device(rng.uniform(0.5, 2, 4)), label_smoothing=0.1, reduction=r
    ),
    "nll_loss": lambda x, r: F.nll_loss(x, class_target(4, 6), weight=on_device(rng.uniform(0.5, 2, 4)), reduction=r),
    "binary_cross_entropy_with_logits": lambda x, r: F.binary_cross_entropy_with_logits(
        x, on_device(rng.uniform(0, 1, (6, 4))), pos_weight=on_device(rng.uniform(0.5, 2, 4)), reduction=r
    ),
    "mse_loss": lambda x, r: F.mse_loss(x, on_device(rng.standard_normal((6, 4))), reduction=r),
}


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_a_reduced_loss_is_a_0d_tensor_on_the_device(name, reduction):
    x = on_device(rng.standard_normal((6, 4)))
    x.requires_grad = True
    loss = LOSSES[name](x, reduction)
    assert loss.shape == ()
    assert_on_device(loss)
    loss.backward()
    assert_on_device(x.grad)
    assert x.grad.shape == (6, 4)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_an_unreduced_loss_stays_on_the_device(name):
    loss = LOSSES[name](on_device(rng.standard_normal((6, 4))), "none")
    assert_on_device(loss)


def test_a_cpu_target_with_a_device_input_is_refused_by_name():
    with pytest.raises(RuntimeError, match="CrossEntropy: expected all inputs on one device"):
        F.cross_entropy(on_device(rng.standard_normal((3, 4))), Tensor(np.array([0, 1, 2])))


def test_an_out_of_range_target_on_the_device_names_the_value():
    with pytest.raises(IndexError, match="nll_loss: target value 7 is out of range for 4 classes"):
        F.nll_loss(on_device(rng.standard_normal((3, 4))), on_device(np.array([0, 7, -100])))
