"""Every Function in kinone.distributed against central finite differences (float64).

Samples live beside this file in `samples_<family>.py` modules, each with a `SAMPLES` dict
mapping a Function class to sample calls `(fn, inputs)` or `(fn, inputs, gradcheck options)`,
as in tests/nn. The meta-test fails when a Function of kinone.distributed has no sample; each
sample is traced to prove that it runs its Function, and runs on the stand-in CUDA device too.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import kinone.distributed  # noqa: F401  (defines the Functions)
from kinone.autograd import Tensor, backend, functions_in, gradcheck, trace
from kinone.autograd.testing import device_parity


def _load_samples() -> dict:
    samples: dict = {}
    for path in sorted(Path(__file__).parent.glob("samples_*.py")):
        spec = importlib.util.spec_from_file_location(f"kinone_distributed_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for cls, entries in module.SAMPLES.items():
            samples.setdefault(cls, []).extend(entries)
    return samples


SAMPLES = _load_samples()
CASES = [(cls, i, sample) for cls, entries in SAMPLES.items() for i, sample in enumerate(entries)]
IDS = [f"{cls.__name__}-{i}" for cls, i, _ in CASES]


def test_every_function_has_a_gradcheck_sample():
    functions = functions_in("kinone.distributed")
    assert functions, "kinone.distributed defines Functions (SyncBatchNormTraining at least)"
    missing = sorted(f"{cls.__module__}.{cls.__qualname__}" for cls in functions - set(SAMPLES))
    assert not missing, f"Functions without a gradcheck sample: {missing}"


def test_every_function_has_a_docstring_with_its_math():
    for cls in functions_in("kinone.distributed"):
        doc = cls.__doc__ or ""
        assert "y =" in doc and "dL/d" in doc, (
            f"{cls.__qualname__}: docstring must state forward (y = ...) and gradient (dL/d...)"
        )


@pytest.mark.parametrize("function, sample", [(cls, sample) for cls, _, sample in CASES], ids=IDS)
def test_gradcheck(function, sample):
    fn, inputs, options = sample if len(sample) == 3 else (*sample, {})
    tensors = [Tensor(np.array(x, copy=True), requires_grad=True) for x in inputs]
    with trace() as records:
        fn(*tensors)
    assert function in {rec.function for rec in records}, f"sample does not call {function.__name__}"
    assert gradcheck(fn, [Tensor(np.array(x, copy=True), requires_grad=True) for x in inputs], **options)


@pytest.mark.parametrize("function, sample", [(cls, sample) for cls, _, sample in CASES], ids=IDS)
def test_same_numbers_on_the_standin_cuda_device(function, sample):
    fn, inputs = sample[0], sample[1]
    with backend.use_standin_cuda():
        device_parity(fn, [np.array(x, copy=True) for x in inputs])
