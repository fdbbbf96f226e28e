"""torch.save / torch.load without pickle: tensors, state dicts, optimizer state (int keys),
nested checkpoints; objects without a pickle-free form refused by name (whole Modules:
test_serialization_modules.py)."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

import kinone.torch as torch
from kinone import nn
from kinone.optim import SGD


def test_a_tensor_round_trips_with_requires_grad(tmp_path):
    x = torch.tensor(np.arange(6, dtype=np.float32).reshape(2, 3), requires_grad=True)
    torch.save(x, tmp_path / "x.pt")
    y = torch.load(tmp_path / "x.pt")
    assert isinstance(y, torch.Tensor) and y.requires_grad and y.dtype == np.float32
    np.testing.assert_array_equal(y.data, x.data)


def test_a_checkpoint_dict_with_model_and_optimizer_state(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.tensor(np.ones((2, 3), np.float32))).sum().backward()
    optimizer.step()
    checkpoint = {
        "epoch": 3,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "history": [0.5, 0.25],
        "shape": (2, 3),
        "note": None,
    }
    torch.save(checkpoint, tmp_path / "checkpoint.pt")
    loaded = torch.load(tmp_path / "checkpoint.pt")
    assert loaded["epoch"] == 3 and loaded["history"] == [0.5, 0.25] and loaded["shape"] == (2, 3)
    assert loaded["note"] is None and list(loaded["model"]) == list(model.state_dict())
    fresh = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    fresh.load_state_dict(loaded["model"])
    for a, b in zip(fresh.parameters(), model.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    restored = SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    restored.load_state_dict(loaded["optimizer"])
    assert restored.state_dict()["param_groups"] == optimizer.state_dict()["param_groups"]


def test_no_pickle_in_the_file(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "w.pt")
    with zipfile.ZipFile(tmp_path / "w.pt") as archive:
        assert all(name.endswith(".npy") for name in archive.namelist())
    assert b"pickle" not in (tmp_path / "w.pt").read_bytes()


def test_objects_without_a_pickle_free_form_are_refused(tmp_path):
    with pytest.raises(TypeError, match=r"obj\.f is the function .*<lambda>, which has no pickle-free form"):
        torch.save({"f": lambda: 0}, tmp_path / "m.pt")
    with pytest.raises(TypeError, match=r"obj\.1 is a set, which has no pickle-free form"):
        torch.save([1, {2}], tmp_path / "m.pt")
    with pytest.raises(TypeError, match="give a file path .* or an open binary file"):
        torch.save(torch.ones(1), object())
    assert not (tmp_path / "m.pt").exists()


def test_a_file_from_kinone_nn_save_loads_as_tensors(tmp_path):
    nn.save({"a": np.ones(2, np.float32)}, tmp_path / "sd.npz")
    loaded = torch.load(tmp_path / "sd.npz")
    assert isinstance(loaded["a"], torch.Tensor)
