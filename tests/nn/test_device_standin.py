"""Every Function of kinone.nn on the stand-in CUDA device gives the CPU's numbers (see
tests/autograd/test_device_standin.py for what the stand-in catches)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from kinone.autograd import backend
from kinone.autograd.testing import device_parity

_spec = importlib.util.spec_from_file_location(
    "kinone_nn_gradcheck_samples", Path(__file__).parent / "test_gradcheck.py"
)
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
CASES = _module.CASES


@pytest.fixture(autouse=True)
def standin_cuda():
    with backend.use_standin_cuda():
        yield


@pytest.mark.parametrize(
    "function, sample", [(cls, s) for cls, _, s in CASES], ids=[f"{cls.__name__}-{i}" for cls, i, _ in CASES]
)
def test_function_on_the_standin_device_matches_the_cpu(function, sample):
    fn, inputs = sample[0], sample[1]
    device_parity(fn, inputs)
