"""Every Function of kinone.autograd on the stand-in CUDA device gives the CPU's numbers, and
passes gradcheck there (float64, perturbed on the device).

The stand-in (kinone.autograd.standin) refuses to mix its arrays with NumPy's, as CuPy does,
so an op that would break on a GPU breaks here, in CI, without one.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from kinone.autograd import Function, GradcheckError, Tensor, backend, gradcheck
from kinone.autograd.testing import device_parity

_spec = importlib.util.spec_from_file_location(
    "kinone_autograd_gradcheck_samples", Path(__file__).parent / "test_gradcheck.py"
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


@pytest.mark.parametrize(
    "function, sample", [(cls, s) for cls, _, s in CASES], ids=[f"{cls.__name__}-{i}" for cls, i, _ in CASES]
)
def test_gradcheck_on_the_standin_device(function, sample):
    fn, inputs, options = sample if len(sample) == 3 else (*sample, {})
    tensors = [Tensor(x, requires_grad=True).cuda() for x in inputs]
    assert all(t.is_cuda for t in tensors)
    assert gradcheck(fn, tensors, **options)


def test_gradcheck_on_the_standin_device_catches_a_wrong_gradient():
    class WrongSquare(Function):
        """y = x²;  dL/dx = g * x  (deliberately wrong: should be 2 g x)."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved
            return grad * x

    x = Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True).cuda()
    with pytest.raises(GradcheckError, match=r"input 0 \(shape \(3,\)\) fails at element"):
        gradcheck(WrongSquare.apply, [x])


def test_gradcheck_directional_mode_on_the_standin_device():
    x = Tensor(np.random.default_rng(0).standard_normal((30, 30)), requires_grad=True).cuda()
    assert gradcheck(lambda a: (a * a).tanh().sum(dim=1), [x], max_full_elements=100)
    with pytest.raises(GradcheckError, match="random direction"):
        gradcheck(lambda a: (a * a).detach().requires_grad_() * a, [x], max_full_elements=100)


def test_gradcheck_leaves_the_callers_device_input_unchanged():
    x = Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True).cuda()
    before = x.numpy()
    assert gradcheck(lambda a: a.exp(), [x])
    np.testing.assert_array_equal(x.numpy(), before)
    assert x.device == "cuda:0"
