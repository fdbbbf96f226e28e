"""kinone.models weights: `weights=PATH` loading, the 3-to-1-channel adaptation of the first
conv, and the .pth converter's behaviour without PyTorch."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from kinone import models, nn
from kinone.autograd import Tensor, manual_seed, no_grad
from kinone.models import convert


def randomize_batch_norm(model, seed=0):
    """Non-trivial running statistics and affine parameters, so eval mode is a real test."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.data[...] = rng.normal(0, 0.1, c)
            m.running_var.data[...] = rng.uniform(0.5, 1.5, c)
            m.weight.data[...] = rng.uniform(0.5, 1.5, c)
            m.bias.data[...] = rng.normal(0, 0.1, c)
    return model


def forward(model, x):
    with no_grad():
        return model.eval()(Tensor(x)).data


def test_adapt_input_conv():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    one = models.adapt_input_conv(w, 1)
    assert one.shape == (4, 1, 3, 3) and one.dtype == np.float32
    np.testing.assert_allclose(one[:, 0], w.sum(axis=1), rtol=1e-6)
    same = models.adapt_input_conv(w, 3)
    assert np.array_equal(same, w) and same is not w
    five = models.adapt_input_conv(w, 5)  # channels repeated cyclically, scaled by 3/5
    np.testing.assert_allclose(five, np.concatenate([w, w[:, :2]], axis=1) * 0.6, rtol=1e-6)
    assert models.adapt_input_conv(nn.Parameter(w), 1).shape == (4, 1, 3, 3)
    with pytest.raises(ValueError, match="expected a conv kernel"):
        models.adapt_input_conv(w[0], 1)
    with pytest.raises(ValueError, match="positive int"):
        models.adapt_input_conv(w, 0)


def test_first_conv_keys_are_torchvision_names():
    assert models.first_conv_key(models.resnet18()) == "conv1.weight"
    assert models.first_conv_key(models.efficientnet_b0()) == "features.0.0.weight"


def test_weights_round_trip_through_npz(tmp_path):
    manual_seed(1)
    source = randomize_batch_norm(models.resnet18(num_classes=7))
    source.layer1[0].bn1.num_batches_tracked.data[...] = 12
    path = tmp_path / "resnet18.npz"
    nn.save(source.state_dict(), path)
    loaded = models.resnet18(num_classes=7, weights=path)
    a, b = source.state_dict(), loaded.state_dict()
    assert list(a) == list(b)
    assert all(np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)
    x = np.random.default_rng(2).standard_normal((2, 3, 64, 64)).astype(np.float32)
    np.testing.assert_array_equal(forward(source, x), forward(loaded, x))
    # The same file through the registry and the helper.
    assert np.array_equal(models.get_model("resnet18", num_classes=7, weights=str(path)).fc.weight.data, a["fc.weight"])
    fresh = models.resnet18(num_classes=7)
    result = models.load_weights(fresh, path)
    assert result.missing_keys == [] and result.unexpected_keys == []


def test_weights_errors_name_the_file_and_the_keys(tmp_path):
    path = tmp_path / "r18.npz"
    nn.save(models.resnet18(num_classes=7).state_dict(), path)
    with pytest.raises(RuntimeError, match=r"(?s)r18\.npz.*size mismatch for fc\.weight"):
        models.resnet18(num_classes=1000, weights=path)
    state = models.resnet18(num_classes=7).state_dict()
    state.pop("layer4.1.bn2.num_batches_tracked")
    state["extra.weight"] = np.zeros(3, dtype=np.float32)
    nn.save(state, path)
    missing_then_unexpected = r'(?s)Missing key.*"layer4\.1\.bn2\.num_batches_tracked".*Unexpected.*"extra\.weight"'
    with pytest.raises(RuntimeError, match=missing_then_unexpected):
        models.resnet18(num_classes=7, weights=path)
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        models.resnet18(weights=tmp_path / "nowhere.npz")
    with pytest.raises(TypeError, match="weights must be a path"):
        models.resnet18(weights=3)


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0"])
def test_one_channel_model_loads_three_channel_weights(tmp_path, name):
    """A gray image through the 1-channel model equals the same image repeated over three
    channels through the 3-channel model, once the kernel is summed over its input channels."""
    manual_seed(3)
    rgb = randomize_batch_norm(models.get_model(name, num_classes=5))
    path = tmp_path / f"{name}.npz"
    nn.save(rgb.state_dict(), path)
    gray = models.get_model(name, num_classes=5, in_channels=1, weights=path)
    key = models.first_conv_key(gray)
    assert gray.state_dict()[key].shape[1] == 1
    np.testing.assert_allclose(
        gray.state_dict()[key], rgb.state_dict()[key].sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7
    )
    x = np.random.default_rng(4).standard_normal((2, 1, 64, 64)).astype(np.float32)
    expected = forward(rgb, np.repeat(x, 3, axis=1))
    np.testing.assert_allclose(forward(gray, x), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_adapt_state_dict_touches_only_the_first_conv():
    model = models.resnet18(in_channels=1)
    state = models.resnet18().state_dict()
    adapted = models.adapt_state_dict(state, model)
    assert list(adapted) == list(state)
    assert adapted["conv1.weight"].shape == (64, 1, 7, 7)
    assert all(adapted[k] is state[k] for k in state if k != "conv1.weight")
    assert state["conv1.weight"].shape == (64, 3, 7, 7)  # the input is not modified


def test_state_dict_to_numpy_unwraps_checkpoints(capsys):
    inner = OrderedDict(
        [
            ("module.conv1.weight", np.ones((2, 1, 1, 1), np.float32)),
            ("module.bn1.num_batches_tracked", np.array(3, np.int64)),
        ]
    )
    out = convert.state_dict_to_numpy({"epoch": 4, "state_dict": inner, "optimizer": {}})
    assert list(out) == ["conv1.weight", "bn1.num_batches_tracked"]
    assert out["bn1.num_batches_tracked"].dtype == np.int64
    convert.state_dict_to_numpy({"a": np.zeros(2), "note": "text"}, source="x.pth")
    assert "skipped non-tensor entries of x.pth: ['note']" in capsys.readouterr().err
    with pytest.raises(convert.ConversionError, match="holds a list"):
        convert.state_dict_to_numpy([1, 2])
    with pytest.raises(convert.ConversionError, match="holds no tensors"):
        convert.state_dict_to_numpy({"epoch": 1})


def test_converter_without_torch_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    source, target = tmp_path / "in.pth", tmp_path / "out.npz"
    source.write_bytes(b"not really a checkpoint")
    assert convert.main([str(source), str(target)]) == 1
    err = capsys.readouterr().err
    assert "needs PyTorch" in err and "in.pth" in err and "pip install torch" in err
    assert not target.exists()
    with pytest.raises(convert.ConversionError, match="needs PyTorch"):
        convert.convert(source, target)


def test_importing_kinone_models_does_not_import_torch():
    code = "import sys, kinone.models, kinone.models.convert; assert 'torch' not in sys.modules, 'torch imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_child_env())
    assert done.returncode == 0, done.stderr


def test_converter_command_line_help():
    done = subprocess.run(
        [sys.executable, "-m", "kinone.models.convert", "--help"], capture_output=True, text=True, env=_child_env()
    )
    assert done.returncode == 0 and "IN" in done.stdout.upper() and "--model" in done.stdout


def _child_env() -> dict:
    """This environment, with kinone-nn's src folder on PYTHONPATH for a child interpreter."""
    env = dict(os.environ)
    src = str(Path(models.__file__).parents[2])  # .../kinone-nn/src
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    return env
