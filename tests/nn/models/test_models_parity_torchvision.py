"""kinone.models against torchvision: the same state-dict keys in the same order, strict loads
of converted torchvision weights, and the same logits, batch-norm statistics and gradients.

Skipped without torchvision (`pip install torch==2.14.1 torchvision==0.29.1`).
"""

from __future__ import annotations

import numpy as np
import pytest

torchvision = pytest.importorskip("torchvision")
import torch  # noqa: E402  (torchvision brings torch)

from kinone import models, nn  # noqa: E402
from kinone.autograd import Tensor, no_grad  # noqa: E402
from kinone.models import convert  # noqa: E402

PARITY_MODELS = ["resnet18", "resnet50", "efficientnet_b0"]
DEEP_MODELS = [name for name in models.list_models() if name not in PARITY_MODELS]


def torchvision_model(name: str, seed: int = 0, **kwargs):
    """A torchvision model with random weights and non-trivial batch-norm statistics."""
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
    result = model.load_state_dict(convert.state_dict_to_numpy(tv_model.state_dict()), strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    return model


def assert_close(actual, expected, rtol=1e-4, what=""):
    """Equal to `rtol` relative to the largest magnitude of `expected` (logits near 0 included)."""
    expected = np.asarray(expected)
    scale = max(float(np.abs(expected).max()), 1e-12)
    worst = float(np.abs(np.asarray(actual) - expected).max()) / scale
    assert worst <= rtol, f"{what}: max |difference| / max |expected| = {worst:.3g} > {rtol}"


def images(n=2, size=64, seed=1):
    return np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32)


def module_signature(module):
    """The hyperparameters that must agree, by layer type (same attribute names in both)."""
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
    if kind in ("Dropout", "StochasticDepth"):
        return round(module.p, 12), getattr(module, "mode", None)
    if kind == "MaxPool2d":
        return module.kernel_size, module.stride, module.padding
    if kind == "Linear":
        return module.in_features, module.out_features
    return None


def check_same_tree(name: str):
    tv = getattr(torchvision.models, name)(weights=None)
    ours = models.get_model(name)
    tv_state, our_state = tv.state_dict(), ours.state_dict()
    assert list(our_state) == list(tv_state)
    assert [tuple(v.shape) for v in our_state.values()] == [tuple(v.shape) for v in tv_state.values()]
    assert all(our_state[k].dtype == tv_state[k].numpy().dtype for k in tv_state)
    tv_modules = dict(tv.named_modules())
    our_modules = list(ours.named_modules())
    assert [(n, type(m).__name__) for n, m in our_modules] == [(n, type(m).__name__) for n, m in tv_modules.items()]
    for path, module in our_modules:
        assert module_signature(module) == module_signature(tv_modules[path]), path
    assert ours.num_parameters() == sum(p.numel() for p in tv.parameters())


@pytest.mark.parametrize("name", PARITY_MODELS)
def test_same_module_tree_keys_order_and_hyperparameters(name):
    check_same_tree(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", DEEP_MODELS)
def test_same_module_tree_for_every_other_variant(name):
    check_same_tree(name)


@pytest.mark.parametrize("name", PARITY_MODELS)
def test_eval_logits_match_torchvision(name):
    tv = torchvision_model(name).eval()
    ours = kinone_copy(tv, name).eval()
    x = images()
    with torch.no_grad():
        expected = tv(torch.from_numpy(x)).numpy()
    with no_grad():
        actual = ours(Tensor(x)).data
    assert actual.shape == expected.shape == (2, 1000)
    assert_close(actual, expected, 1e-4, f"{name} eval logits")


def training_step(name, dtype, n, size):
    """One train-mode forward and cross-entropy backward through torchvision's model and our
    copy of it, both in `dtype`. EfficientNet's dropout and stochastic depth are off: the two
    frameworks would draw different random numbers."""
    options = {"dropout": 0.0, "stochastic_depth_prob": 0.0} if name.startswith("efficientnet") else {}
    tv = torchvision_model(name, num_classes=10, **options).train().to(getattr(torch, np.dtype(dtype).name))
    ours = kinone_copy(tv, name, num_classes=10, **options).train().to(dtype)
    x, target = images(n, size=size, seed=2).astype(dtype), np.arange(n) % 10
    tv_logits = tv(torch.from_numpy(x))
    tv_loss = torch.nn.functional.cross_entropy(tv_logits, torch.from_numpy(target))
    tv_loss.backward()
    logits = ours(Tensor(x))
    loss = nn.functional.cross_entropy(logits, Tensor(target))
    loss.backward()
    return tv, ours, tv_logits.detach().numpy(), logits.data, tv_loss.item(), loss.item()


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0"])
def test_training_forward_matches_torchvision(name):
    """float32, train mode: batch statistics in the forward, running statistics updated."""
    tv, ours, tv_logits, logits, tv_loss, loss = training_step(name, np.float32, n=4, size=64)
    assert_close(logits, tv_logits, 1e-4, "train logits")
    assert abs(loss - tv_loss) <= 1e-4 * abs(tv_loss)
    tv_state = tv.state_dict()
    for key, value in ours.state_dict().items():
        if "running" in key or "num_batches" in key:
            assert_close(value, tv_state[key].numpy(), 1e-4, key)


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0"])
def test_training_gradients_match_torchvision(name):
    """float64, so that the comparison checks the math: in float32 a pre-activation within
    rounding of 0 (one in ~10^5, e.g. -6.4e-7) takes the other side of a ReLU in one framework,
    and the gradients of the layers below legitimately differ by a few percent."""
    tv, ours, tv_logits, logits, _, _ = training_step(name, np.float64, n=4, size=32)
    assert_close(logits, tv_logits, 1e-10, "train logits (float64)")
    tv_params = dict(tv.named_parameters())
    scale = max(float(p.grad.abs().max()) for p in tv.parameters())
    for key, p in ours.named_parameters():
        expected = tv_params[key].grad.numpy()
        # Some gradients are exactly 0 in exact arithmetic (a BN bias whose every path meets
        # another BN): compare those against the gradients' overall scale.
        floor = max(float(np.abs(expected).max()), 1e-6 * scale)
        worst = float(np.abs(p.grad.data - expected).max()) / floor
        assert worst <= 1e-8, f"grad of {key}: relative difference {worst:.3g}"


def test_converter_round_trip_from_a_pth_file(tmp_path, capsys):
    tv = torchvision_model("resnet18", seed=3, num_classes=14)
    pth, npz = tmp_path / "resnet18.pth", tmp_path / "resnet18.npz"
    torch.save(tv.state_dict(), pth)
    assert convert.main([str(pth), str(npz), "--model", "resnet18"]) == 0
    assert "122 arrays" in capsys.readouterr().out
    saved, metadata = nn.load_with_metadata(npz)
    assert list(saved) == list(tv.state_dict())
    assert saved["bn1.num_batches_tracked"].dtype == np.int64 and saved["bn1.num_batches_tracked"].shape == ()
    assert metadata["converted_from"] == "resnet18.pth" and metadata["torch"] == torch.__version__
    ours = models.resnet18(num_classes=14, weights=npz).eval()
    x = images()
    with torch.no_grad():
        expected = tv.eval()(torch.from_numpy(x)).numpy()
    with no_grad():
        assert_close(ours(Tensor(x)).data, expected, 1e-4, "logits after conversion")
    # A 1-channel model takes the same file; a gray image matches torchvision on the image
    # repeated over the three channels.
    gray = models.resnet18(num_classes=14, in_channels=1, weights=npz).eval()
    with no_grad():
        actual = gray(Tensor(x[:, :1])).data
    with torch.no_grad():
        expected = tv(torch.from_numpy(np.repeat(x[:, :1], 3, axis=1))).numpy()
    assert_close(actual, expected, 1e-4, "1-channel logits")


def test_converter_unwraps_training_checkpoints_and_checks_names(tmp_path, capsys):
    tv = torchvision_model("efficientnet_b0", num_classes=3)
    wrapped = {"epoch": 7, "model": {f"module.{k}": v for k, v in tv.state_dict().items()}}
    pth, npz = tmp_path / "checkpoint.pth", tmp_path / "b0.npz"
    torch.save(wrapped, pth)
    assert convert.main([str(pth), str(npz), "--model", "efficientnet_b0"]) == 0
    assert list(nn.load(npz)) == list(tv.state_dict())
    assert convert.main([str(pth), str(tmp_path / "wrong.npz"), "--model", "resnet18"]) == 1
    assert "not a resnet18 state dict" in capsys.readouterr().err
    assert not (tmp_path / "wrong.npz").exists()
    (tmp_path / "broken.pth").write_bytes(b"garbage")
    assert convert.main([str(tmp_path / "broken.pth"), str(tmp_path / "x.npz")]) == 1
    err = capsys.readouterr().err
    assert "cannot read" in err and "broken.pth" in err
