"""Every Function in kinone-nn against central finite differences (float64).

Samples live beside this file in `samples_<family>.py` modules, each with a `SAMPLES` dict
mapping a Function class to sample calls `(fn, inputs)` or `(fn, inputs, gradcheck options)`
(inputs are float64 arrays; non-array extras such as integer targets are closed over by fn).
The meta-test fails when a Function of kinone.nn has no sample, and each sample is traced to
prove it really runs its Function.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import kinone.nn  # noqa: F401  (defines the Functions)
from kinone.autograd import Tensor, functions_in, gradcheck, trace


def _load_samples() -> dict:
    samples: dict = {}
    for path in sorted(Path(__file__).parent.glob("samples_*.py")):
        spec = importlib.util.spec_from_file_location(f"kinone_nn_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for cls, entries in module.SAMPLES.items():
            samples.setdefault(cls, []).extend(entries)
    return samples


SAMPLES = _load_samples()
CASES = [(cls, i, sample) for cls, entries in SAMPLES.items() for i, sample in enumerate(entries)]


def test_every_function_has_a_gradcheck_sample():
    missing = sorted(f"{cls.__module__}.{cls.__qualname__}" for cls in functions_in("kinone.nn") - set(SAMPLES))
    assert not missing, f"Functions without a gradcheck sample: {missing}"


def test_every_function_has_a_docstring_with_its_math():
    for cls in functions_in("kinone.nn"):
        doc = cls.__doc__ or ""
        assert "y =" in doc and "dL/d" in doc, (
            f"{cls.__qualname__}: docstring must state forward (y = ...) and gradient (dL/d...)"
        )


@pytest.mark.parametrize(
    "function, sample", [(cls, sample) for cls, _, sample in CASES], ids=[f"{cls.__name__}-{i}" for cls, i, _ in CASES]
)
def test_gradcheck(function, sample):
    fn, inputs, options = sample if len(sample) == 3 else (*sample, {})
    tensors = [Tensor(np.array(x, copy=True), requires_grad=True) for x in inputs]
    with trace() as records:
        fn(*tensors)
    assert function in {rec.function for rec in records}, f"sample does not call {function.__name__}"
    assert gradcheck(fn, [Tensor(np.array(x, copy=True), requires_grad=True) for x in inputs], **options)
