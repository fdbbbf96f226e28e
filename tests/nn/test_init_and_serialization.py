"""kinone.nn.init formulas and the .npz state-dict files."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from kinone import nn
from kinone.autograd import manual_seed
from kinone.nn import init


def test_fans():
    assert init.calculate_fan_in_and_fan_out(np.zeros((8, 4, 3, 3))) == (36, 72)
    assert init.calculate_fan_in_and_fan_out(np.zeros((5, 7))) == (7, 5)
    with pytest.raises(ValueError, match="at least 2 dims"):
        init.calculate_fan_in_and_fan_out(np.zeros(3))


@pytest.mark.parametrize(
    "fill, expected_std",
    [
        (lambda w: init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"), math.sqrt(2 / (64 * 9))),
        (lambda w: init.kaiming_normal_(w), math.sqrt(2 / (32 * 9))),
        (lambda w: init.xavier_normal_(w), math.sqrt(2 / (32 * 9 + 64 * 9))),
        (lambda w: init.xavier_uniform_(w), math.sqrt(6 / (32 * 9 + 64 * 9)) / math.sqrt(3)),
        (lambda w: init.kaiming_uniform_(w, a=math.sqrt(5)), 1 / math.sqrt(32 * 9) / math.sqrt(3)),  # U(±1/√fan_in)
        (lambda w: init.normal_(w, 0.0, 0.02), 0.02),
    ],
)
def test_initialisers_have_the_pytorch_spread(fill, expected_std):
    manual_seed(0)
    w = nn.Parameter(np.empty((64, 32, 3, 3), dtype=np.float32))
    data_before = w.data
    fill(w)
    assert w.data is data_before and w.dtype == np.float32
    assert abs(w.data.std() - expected_std) / expected_std < 0.03


def test_uniform_zeros_ones_constant_trunc_normal():
    w = np.empty((1000,), dtype=np.float32)
    init.uniform_(w, -2, 3)
    assert w.min() >= -2 and w.max() < 3
    init.trunc_normal_(w, std=1.0, a=-0.5, b=0.5)
    assert w.min() >= -0.5 and w.max() <= 0.5
    assert np.all(init.zeros_(w) == 0) and np.all(init.ones_(w) == 1) and np.all(init.constant_(w, 0.25) == 0.25)


def test_seeded_initialisation_is_reproducible():
    manual_seed(3)
    a = nn.Linear(4, 4).weight.data.copy()
    manual_seed(3)
    assert np.array_equal(a, nn.Linear(4, 4).weight.data)


def test_save_load_round_trip_keeps_order_dtypes_and_metadata(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    path = tmp_path / "model.npz"
    nn.save(model.state_dict(), path, metadata={"model": "tiny", "epoch": 3})
    loaded, metadata = nn.load_with_metadata(path)
    assert list(loaded) == list(model.state_dict()) and metadata == {"model": "tiny", "epoch": 3}
    assert loaded["1.num_batches_tracked"].dtype == np.int64 and loaded["0.weight"].dtype == np.float32
    fresh = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    fresh.load_state_dict(nn.load(path))
    assert np.array_equal(fresh[0].weight.data, model[0].weight.data)


def test_files_contain_no_pickle(tmp_path):
    path = tmp_path / "sd.npz"
    nn.save({"a": np.arange(3)}, path)
    with np.load(path, allow_pickle=False) as npz:  # would raise on an object array
        assert list(npz.files) == ["a"]
    with pytest.raises(TypeError, match="holds Python objects"):
        nn.save({"bad": np.array([{"x": 1}], dtype=object)}, tmp_path / "bad.npz")


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    nn.save({"a": np.ones(3)}, path)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        nn.save({"a": np.zeros(3)}, path)
    assert np.array_equal(nn.load(path)["a"], np.ones(3))
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # no temporary file left behind


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file: .*missing.npz"):
        nn.load(tmp_path / "missing.npz")
    bad = tmp_path / "corrupt.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="corrupt.npz is not a readable Kinone .npz file"):
        nn.load(bad)
