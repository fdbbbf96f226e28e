"""`DeviceLoader` hands out a loader's batches on the device, unchanged, and keeps its positioning."""

from __future__ import annotations

import numpy as np

from kinone.autograd import backend
from kinone.data import DataLoader, TensorDataset
from kinone.data.device_loader import DeviceLoader


def _loader():
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    y = np.arange(10, dtype=np.int64)
    return DataLoader(TensorDataset(x, y), batch_size=3, shuffle=True, seed=1)


def test_batches_arrive_on_the_device_unchanged_and_in_order():
    expected = [(a.numpy(), b.numpy()) for a, b in _loader()]
    with backend.use_standin_cuda():
        got = list(DeviceLoader(_loader(), "cuda"))
        assert all(a.device.type == "cuda" and b.device.type == "cuda" for a, b in got)
        assert len(got) == len(expected) == len(DeviceLoader(_loader(), "cuda"))
        for (a, b), (ea, eb) in zip(got, expected):
            np.testing.assert_array_equal(a.numpy(), ea)
            np.testing.assert_array_equal(b.numpy(), eb)


def test_the_wrapper_keeps_the_loaders_positioning():
    loader = _loader()
    state = loader.state_dict()  # epoch 0, before it starts
    reference = [b.numpy() for _, b in loader][2:]
    with backend.use_standin_cuda():
        wrapped = DeviceLoader(_loader(), "cuda")
        wrapped.load_state_dict({**state, "batches_done": 2})
        assert [b.numpy().tolist() for _, b in wrapped] == [r.tolist() for r in reference]


def test_on_the_cpu_it_passes_batches_through():
    loader = _loader()
    assert [b.numpy().tolist() for _, b in DeviceLoader(loader, "cpu")] == [b.numpy().tolist() for _, b in _loader()]
