"""kinone.models forward passes: output shapes, training vs evaluation behaviour (batch-norm
statistics, dropout, stochastic depth), and a backward pass that reaches every parameter."""

from __future__ import annotations

import numpy as np
import pytest

from kinone import models, nn
from kinone.autograd import Tensor, manual_seed, no_grad


def images(n, c=3, size=64, seed=0):
    return np.random.default_rng(seed).standard_normal((n, c, size, size)).astype(np.float32)


def running_stats(model):
    return {k: v.copy() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "efficientnet_b0"])
def test_eval_forward_shape_at_64(name):
    model = models.get_model(name, num_classes=10).eval()
    with no_grad():
        y = model(Tensor(images(2)))
    assert y.shape == (2, 10) and y.dtype == np.float32 and np.all(np.isfinite(y.data))
    assert y.grad_fn is None


def test_resnet18_eval_forward_at_224():
    model = models.resnet18().eval()
    with no_grad():
        y = model(Tensor(images(1, size=224)))
    assert y.shape == (1, 1000) and np.all(np.isfinite(y.data))


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0"])
def test_training_step_reaches_every_parameter(name):
    manual_seed(0)
    model = models.get_model(name, num_classes=4).train()
    x = Tensor(images(2, size=32))
    target = Tensor(np.array([1, 3]))
    loss = nn.functional.cross_entropy(model(x), target)
    loss.backward()
    missing = [key for key, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient reached {missing}"
    for key, p in model.named_parameters():
        assert p.grad.shape == p.shape and np.all(np.isfinite(p.grad.data)), key
    head = model.fc if name == "resnet18" else model.classifier[1]
    assert np.abs(head.weight.grad.data).sum() > 0


def test_batch_norm_statistics_update_in_training_only():
    model = models.resnet18(num_classes=3)
    before = running_stats(model)
    with no_grad():
        model.eval()(Tensor(images(2)))
    assert all(np.array_equal(before[k], v) for k, v in running_stats(model).items())
    model.train()(Tensor(images(2)))
    after = running_stats(model)
    assert after["bn1.num_batches_tracked"] == 1 and after["layer4.1.bn2.num_batches_tracked"] == 1
    assert not np.allclose(after["bn1.running_mean"], before["bn1.running_mean"])
    assert not np.allclose(after["layer3.0.downsample.1.running_var"], before["layer3.0.downsample.1.running_var"])


def test_eval_is_per_sample_and_training_uses_the_batch():
    """Eval mode normalises with running statistics: a sample's logits do not depend on the
    rest of the batch. Training mode normalises with batch statistics: they do."""
    model = models.resnet18(num_classes=3)
    x = images(4)
    with no_grad():
        model.eval()
        np.testing.assert_allclose(model(Tensor(x[:2])).data[0], model(Tensor(x)).data[0], rtol=1e-4, atol=1e-5)
        model.train()
        assert not np.allclose(model(Tensor(x[:2])).data[0], model(Tensor(x)).data[0], rtol=1e-3, atol=1e-4)


def test_efficientnet_dropout_and_stochastic_depth_only_in_training():
    manual_seed(0)
    model = models.efficientnet_b0(num_classes=3)
    x = Tensor(images(4, size=32))
    with no_grad():
        model.eval()
        a, b = model(x).data, model(x).data
        np.testing.assert_array_equal(a, b)
        model.train()  # batch statistics, dropout and stochastic depth: random
        c, d = model(x).data, model(x).data
        assert not np.allclose(c, d)
        deterministic = models.efficientnet_b0(num_classes=3, dropout=0.0, stochastic_depth_prob=0.0).train()
        np.testing.assert_allclose(deterministic(x).data, deterministic(x).data, rtol=1e-6, atol=1e-6)


def test_stochastic_depth_function():
    manual_seed(0)
    x = Tensor(np.ones((4000, 2, 3, 3), dtype=np.float32), requires_grad=True)
    y = models.stochastic_depth(x, 0.25, "row", training=True)
    rows = y.data.reshape(4000, -1)
    kept = rows[:, 0] != 0
    assert np.all(rows[kept] == np.float32(1 / 0.75)) and np.all(rows[~kept] == 0)  # whole samples
    assert abs(kept.mean() - 0.75) < 0.03
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, y.data)  # dL/dx = mask / (1 - p)
    assert models.stochastic_depth(x, 0.25, "row", training=False) is x
    assert models.stochastic_depth(x, 0.0, "row", training=True) is x
    assert np.all(models.stochastic_depth(x, 1.0, "row").data == 0)
    batch = models.stochastic_depth(x, 0.5, "batch").data
    assert np.all(batch == 0) or np.all(batch == 2)
    x64 = Tensor(np.ones((3, 2), dtype=np.float64))
    assert models.stochastic_depth(x64, 0.5, "row").dtype == np.float64
    with pytest.raises(ValueError, match="between 0 and 1"):
        models.stochastic_depth(x, 1.5, "row")
    with pytest.raises(ValueError, match="'batch' or 'row'"):
        models.stochastic_depth(x, 0.5, "col")
    module = models.StochasticDepth(0.3, "row")
    assert "p=0.3, mode=row" in repr(module)


def test_mbconv_residual_branch_dropped_by_stochastic_depth():
    config = models.MBConvConfig(6, 3, 1, 16, 16, 1)
    block = models.MBConv(config, stochastic_depth_prob=1.0, norm_layer=nn.BatchNorm2d)
    assert block.use_res_connect
    x = Tensor(images(2, c=16, size=8))
    with no_grad():
        np.testing.assert_array_equal(block.train()(x).data, x.data)  # branch always dropped: y = x
        assert not np.allclose(block.eval()(x).data, x.data)  # eval: y = x + branch
    strided = models.MBConv(models.MBConvConfig(6, 3, 2, 16, 24, 1), 1.0, nn.BatchNorm2d)
    assert not strided.use_res_connect  # no residual, so no stochastic depth: the branch always runs
    with no_grad():
        assert strided.train()(x).shape == (2, 24, 4, 4)


ALL_MODELS = models.list_models()


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_model_runs_forward(name):
    """Every variant, the deep ones included: one small eval forward (32x32: the last stage still
    has a pixel), about 6 s for all thirteen, construction included."""
    model = models.get_model(name, num_classes=5, in_channels=1).eval()
    with no_grad():
        y = model(Tensor(images(1, c=1, size=32)))
    assert y.shape == (1, 5) and np.all(np.isfinite(y.data))
