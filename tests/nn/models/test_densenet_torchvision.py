"""DenseNet against torchvision: the same module tree, keys, hyperparameters and parameter
counts; converted torchvision weights (its published files' old key names included) load
strictly and give the same eval logits, in 3 channels and in 1; a training step gives the
same logits, running statistics and gradients.

Skipped without torchvision (the `vision` environment: torch 2.14.1, torchvision 0.29.1).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

torchvision = pytest.importorskip("torchvision")
import torch  # noqa: E402  (torchvision brings torch)

from kinone import models, nn  # noqa: E402
from kinone.autograd import Tensor, no_grad  # noqa: E402
from kinone.models import convert  # noqa: E402

NAMES = ["densenet121", "densenet161", "densenet169", "densenet201"]


def torchvision_model(name: str, seed: int = 0, **kwargs):
    """torchvision's model with random weights and non-trivial batch-norm statistics."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(weights=None, **kwargs)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return model


def kinone_copy(tv_model, name: str, **kwargs):
    model = models.get_model(name, **kwargs)
    model.load_state_dict(convert.state_dict_to_numpy(tv_model.state_dict()), strict=True)
    return model


def images(n=2, size=64, seed=1, channels=3):
    return np.random.default_rng(seed).standard_normal((n, channels, size, size)).astype(np.float32)


def assert_close(actual, expected, rtol, what):
    """Equal to `rtol` relative to the largest magnitude of `expected`."""
    expected = np.asarray(expected)
    worst = float(np.abs(np.asarray(actual) - expected).max()) / max(float(np.abs(expected).max()), 1e-12)
    assert worst <= rtol, f"{what}: max |difference| / max |expected| = {worst:.3g} > {rtol}"


def signature(module):
    kind = type(module).__name__
    if kind == "Conv2d":
        return (
            tuple(module.kernel_size),
            tuple(module.stride),
            tuple(module.padding),
            tuple(module.dilation),
            module.groups,
            module.bias is not None,
        )
    if kind == "BatchNorm2d":
        return module.eps, module.momentum
    if kind in ("MaxPool2d", "AvgPool2d"):
        pair = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)
        return pair(module.kernel_size), pair(module.stride), pair(module.padding)
    if kind == "Linear":
        return module.in_features, module.out_features
    if kind == "_DenseLayer":
        return module.drop_rate, module.memory_efficient
    return None


@pytest.mark.parametrize("name", NAMES)
def test_same_module_tree_keys_order_and_hyperparameters(name):
    tv, ours = getattr(torchvision.models, name)(weights=None), models.get_model(name)
    tv_state, our_state = tv.state_dict(), ours.state_dict()
    assert list(our_state) == list(tv_state)
    assert [tuple(v.shape) for v in our_state.values()] == [tuple(v.shape) for v in tv_state.values()]
    assert all(our_state[k].dtype == tv_state[k].numpy().dtype for k in tv_state)
    tv_modules = dict(tv.named_modules())
    our_modules = list(ours.named_modules())
    assert [(n, type(m).__name__) for n, m in our_modules] == [(n, type(m).__name__) for n, m in tv_modules.items()]
    for path, module in our_modules:
        assert signature(module) == signature(tv_modules[path]), path
    assert ours.num_parameters() == sum(p.numel() for p in tv.parameters())


def test_eval_logits_match_torchvision():
    tv = torchvision_model("densenet121").eval()
    ours = kinone_copy(tv, "densenet121").eval()
    x = images()
    with torch.no_grad():
        expected = tv(torch.from_numpy(x)).numpy()
    with no_grad():
        actual = ours(Tensor(x)).data
    assert actual.shape == expected.shape == (2, 1000)
    assert_close(actual, expected, 1e-4, "eval logits")
    recorded = ours(Tensor(x)).data  # grad mode on: the shared-buffer path
    assert_close(recorded, expected, 1e-4, "eval logits, graph recorded")


def legacy_state_dict(tv_model):
    """The state dict as torchvision's published densenet files hold it: `norm.1`-style names
    and no num_batches_tracked (the inverse of torchvision's renaming on load)."""
    pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))((?:[12])\.(?:weight|bias|running_mean|running_var))$")
    out = {}
    for key, value in tv_model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        match = pattern.match(key)
        out[f"{match.group(1)}.{match.group(2)}" if match else key] = value
    return out


def test_published_checkpoint_layout_converts_and_loads_in_one_or_three_channels(tmp_path):
    tv = torchvision_model("densenet121", seed=3, num_classes=14).eval()
    pth, npz = tmp_path / "densenet121.pth", tmp_path / "densenet121.npz"
    legacy = legacy_state_dict(tv)
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    torch.save(legacy, pth)
    assert convert.main([str(pth), str(npz)]) == 0
    x = images()
    ours = models.densenet121(num_classes=14, weights=npz).eval()
    with torch.no_grad():
        expected = tv(torch.from_numpy(x)).numpy()
        gray_expected = tv(torch.from_numpy(np.repeat(x[:, :1], 3, axis=1))).numpy()
    with no_grad():
        assert_close(ours(Tensor(x)).data, expected, 1e-4, "logits after conversion")
        gray = models.densenet121(num_classes=14, in_channels=1, weights=npz).eval()
        assert_close(gray(Tensor(x[:, :1])).data, gray_expected, 1e-4, "1-channel logits")


def training_step(dtype, n, size):
    tv = torchvision_model("densenet121", num_classes=10).train().to(getattr(torch, np.dtype(dtype).name))
    ours = kinone_copy(tv, "densenet121", num_classes=10).train().to(dtype)
    x, target = images(n, size=size, seed=2).astype(dtype), np.arange(n) % 10
    tv_logits = tv(torch.from_numpy(x))
    tv_loss = torch.nn.functional.cross_entropy(tv_logits, torch.from_numpy(target))
    tv_loss.backward()
    logits = ours(Tensor(x))
    loss = nn.functional.cross_entropy(logits, Tensor(target))
    loss.backward()
    return tv, ours, tv_logits.detach().numpy(), logits.data, tv_loss.item(), loss.item()


def test_training_forward_and_running_statistics_match_torchvision():
    tv, ours, tv_logits, logits, tv_loss, loss = training_step(np.float32, n=4, size=64)
    assert_close(logits, tv_logits, 1e-4, "train logits")
    assert abs(loss - tv_loss) <= 1e-4 * abs(tv_loss)
    tv_state = tv.state_dict()
    for key, value in ours.state_dict().items():
        if "running" in key or "num_batches" in key:
            assert_close(value, tv_state[key].numpy(), 1e-4, key)


def test_training_gradients_match_torchvision():
    """float64, so that no pre-activation within rounding of 0 takes the other side of a ReLU."""
    tv, ours, tv_logits, logits, _, _ = training_step(np.float64, n=4, size=32)
    assert_close(logits, tv_logits, 1e-10, "train logits (float64)")
    tv_params = dict(tv.named_parameters())
    scale = max(float(p.grad.abs().max()) for p in tv.parameters())
    for key, p in ours.named_parameters():
        expected = tv_params[key].grad.numpy()
        floor = max(float(np.abs(expected).max()), 1e-6 * scale)
        worst = float(np.abs(p.grad.data - expected).max()) / floor
        assert worst <= 1e-8, f"grad of {key}: relative difference {worst:.3g}"
