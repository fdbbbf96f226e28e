"""Every Function in kinone.autograd against central finite differences (float64).

SAMPLES maps each Function class to sample calls `(fn, inputs)` or `(fn, inputs, gradcheck options)`;
families may also keep theirs beside this file in `samples_<family>.py` modules (a `SAMPLES` dict
each, merged in). The meta-test fails when a
Function has no sample, and each sample is traced to prove it really runs that Function.
Samples keep values away from kinks and ties (ReLU at 0, max with duplicates) where the
derivative is not defined, and cover broadcasting wherever an op broadcasts.
"""

from __future__ import annotations

import numpy as np
import pytest

import kinone.autograd as ag
from kinone.autograd import Function, Tensor, functions_in, gradcheck, trace
from kinone.autograd.backend import Device
from kinone.autograd.ops import arithmetic, device, elementwise, indexing, joining, matmul, reduction, shape, softmax
from kinone.autograd.ops.device import ToDevice

rng = np.random.default_rng(1234)


def r(*shape):
    """Standard-normal float64 samples."""
    return rng.standard_normal(shape)


def pos(*shape):
    """Positive float64 samples in [0.5, 2)."""
    return rng.uniform(0.5, 2.0, shape)


def away(*shape):
    """Samples at least 0.1 away from zero (for ReLU/abs kinks)."""
    x = rng.uniform(0.1, 2.0, shape)
    return x * rng.choice([-1.0, 1.0], shape)


def distinct(*shape):
    """A random permutation of well-separated values (no ties for max/min)."""
    return rng.permutation(np.arange(int(np.prod(shape)), dtype=np.float64)).reshape(shape) * 0.3 - 1


SAMPLES: dict[type, list] = {
    arithmetic.Add: [
        (lambda a, b: a + b, [r(3, 4), r(3, 4)]),
        (lambda a, b: a + b, [r(2, 3, 1), r(4)]),  # broadcast both sides
        (lambda a: 2.5 + a, [r(3)]),
    ],
    arithmetic.Sub: [
        (lambda a, b: a - b, [r(3, 1), r(1, 4)]),
        (lambda a: 1.0 - a, [r(5)]),
    ],
    arithmetic.Mul: [
        (lambda a, b: a * b, [r(2, 3, 4), r(3, 1)]),
        (lambda a: a * 3.0, [r(4)]),
    ],
    arithmetic.Div: [
        (lambda a, b: a / b, [r(3, 4), pos(4)]),
        (lambda a: 2.0 / a, [pos(3)]),
    ],
    arithmetic.Neg: [(lambda a: -a, [r(2, 3)])],
    arithmetic.Pow: [
        (lambda a: a**3, [r(3, 2)]),
        (lambda a: a**2, [r(4)]),
        (lambda a, b: a**b, [pos(2, 3), r(3)]),
        (lambda b: 2.0**b, [r(4)]),
    ],
    elementwise.Exp: [(lambda a: a.exp(), [r(3, 4)])],
    elementwise.Log: [(lambda a: a.log(), [pos(3, 4)])],
    elementwise.Sqrt: [(lambda a: a.sqrt(), [pos(5)])],
    elementwise.Tanh: [(lambda a: a.tanh(), [r(3, 4)])],
    elementwise.Sigmoid: [(lambda a: a.sigmoid(), [r(3, 4) * 3])],
    elementwise.ReLU: [(lambda a: a.relu(), [away(4, 5)])],
    elementwise.Abs: [(lambda a: a.abs(), [away(6)])],
    elementwise.Clip: [
        (lambda a: a.clip(-0.5, 0.5), [np.array([-1.2, -0.3, 0.1, 0.4, 0.9, 2.0])]),
        (lambda a: a.clip(min=0.2), [np.array([-1.0, 0.5, 1.5])]),
    ],
    # To the CPU and back to the input's device (on the CPU: two copies; on a device: two moves).
    device.ToDevice: [
        (lambda a: ToDevice.apply(ToDevice.apply(a, device=Device("cpu")) * 2, device=a.device), [r(3, 2)])
    ],
    # float32 in the middle: a larger step keeps the rounding error (~1e-7) below tolerance.
    elementwise.Cast: [(lambda a: a.to(np.float32).exp().to(np.float64), [r(3)], {"eps": 1e-2, "rtol": 1e-3})],
    reduction.Sum: [
        (lambda a: a.sum(), [r(3, 4)]),
        (lambda a: a.sum(dim=1), [r(2, 3, 4)]),
        (lambda a: a.sum(dim=(0, -1), keepdim=True), [r(2, 3, 4)]),
    ],
    reduction.Mean: [
        (lambda a: a.mean(), [r(3, 4)]),
        (lambda a: a.mean(dim=-1, keepdim=True), [r(2, 3, 4)]),
        (lambda a: a.mean(dim=(0, 2)), [r(2, 3, 4)]),
    ],
    reduction.Amax: [
        (lambda a: a.amax(dim=1), [distinct(3, 4)]),
        (lambda a: a.amax(dim=(0, 2), keepdim=True), [distinct(2, 3, 4)]),
        (lambda a: a.max(), [distinct(3, 4)]),
    ],
    reduction.Amin: [
        (lambda a: a.amin(dim=0), [distinct(3, 4)]),
        (lambda a: a.min(), [distinct(5)]),
    ],
    reduction.Var: [
        (lambda a: a.var(), [r(3, 4)]),
        (lambda a: a.var(dim=1, keepdim=True), [r(3, 4)]),
        (lambda a: a.var(dim=(0, 2), correction=0), [r(2, 3, 4)]),
    ],
    reduction.LogSumExp: [
        (lambda a: a.logsumexp(dim=1), [r(3, 4)]),
        (lambda a: a.logsumexp(dim=(0, 1), keepdim=True), [r(2, 3, 4)]),
    ],
    softmax.Softmax: [
        (lambda a: a.softmax(dim=-1), [r(3, 5)]),
        (lambda a: a.softmax(dim=0), [r(4, 2, 3)]),
    ],
    softmax.LogSoftmax: [
        (lambda a: a.log_softmax(dim=1), [r(3, 5)]),
        (lambda a: a.log_softmax(dim=0), [r(4, 2)]),
    ],
    shape.Reshape: [
        (lambda a: a.reshape(4, 3) * 1.0, [r(3, 4)]),
        (lambda a: a.view(-1), [r(2, 3)]),
        (lambda a: a.unsqueeze(1).squeeze(), [r(3, 4)]),
        (lambda a: a.flatten(1), [r(2, 3, 4)]),
    ],
    shape.Permute: [
        (lambda a: a.permute(2, 0, 1), [r(2, 3, 4)]),
        (lambda a: a.transpose(0, 1), [r(3, 4)]),
        (lambda a: a.T, [r(3, 4)]),
    ],
    shape.Expand: [
        (lambda a: a.expand(2, 3, 4), [r(3, 1)]),
        (lambda a: a.expand(-1, 5), [r(3, 1)]),
    ],
    indexing.GetItem: [
        (lambda a: a[1], [r(3, 4)]),
        (lambda a: a[:, 1:3], [r(3, 4)]),
        (lambda a: a[-1, ::2, None], [r(2, 3, 4)]),
        (lambda a: a[..., 0], [r(2, 3, 4)]),
        (lambda a: a[np.array([0, 2, 0, 0])], [r(3, 4)]),  # repeated rows accumulate
        (lambda a: a[np.array([0, 1, 1]), np.array([2, 2, 2])], [r(3, 4)]),
        (lambda a: a[np.array([[True, False], [False, True]])], [r(2, 2)]),
    ],
    matmul.MatMul: [
        (lambda a, b: a @ b, [r(3, 4), r(4, 5)]),
        (lambda a, b: a @ b, [r(4), r(4)]),
        (lambda a, b: a @ b, [r(4), r(4, 3)]),
        (lambda a, b: a @ b, [r(2, 3, 4), r(4)]),
        (lambda a, b: a @ b, [r(2, 3, 4), r(4, 5)]),  # shared weight under a batch dim
        (lambda a, b: a @ b, [r(2, 1, 3, 4), r(5, 4, 2)]),  # broadcast batch dims
    ],
    joining.Cat: [
        (lambda a, b: ag.cat([a, b], dim=1), [r(2, 3), r(2, 4)]),
        (lambda a, b, c: ag.cat([a, b, c]), [r(1, 3), r(2, 3), r(3, 3)]),
    ],
    joining.Stack: [
        (lambda a, b: ag.stack([a, b]), [r(2, 3), r(2, 3)]),
        (lambda a, b: ag.stack([a, b], dim=-1), [r(2, 3), r(2, 3)]),
    ],
    joining.Where: [
        (lambda a, b: ag.where(a > 0, a, b), [r(3, 4), r(4)]),
        (lambda a: ag.where(a > 0, a, 0.0), [away(5)]),
    ],
    joining.Maximum: [
        (lambda a, b: ag.maximum(a, b), [distinct(3, 4), distinct(4) + 0.1]),
        (lambda a: ag.maximum(a, 0.0), [away(5)]),
    ],
    joining.Minimum: [
        (lambda a, b: ag.minimum(a, b), [distinct(3, 4), distinct(4) + 0.1]),
    ],
}


def _merge_sample_modules(samples: dict) -> dict:
    """Add the `SAMPLES` of every `samples_*.py` beside this file."""
    import importlib.util
    from pathlib import Path

    for path in sorted(Path(__file__).parent.glob("samples_*.py")):
        spec = importlib.util.spec_from_file_location(f"kinone_autograd_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for cls, entries in module.SAMPLES.items():
            samples.setdefault(cls, []).extend(entries)
    return samples


SAMPLES = _merge_sample_modules(SAMPLES)


def test_every_function_has_a_gradcheck_sample():
    missing = sorted(cls.__qualname__ for cls in functions_in("kinone.autograd") - set(SAMPLES))
    assert not missing, f"Functions without a gradcheck sample: {missing}"


def test_every_function_has_a_docstring_with_its_math():
    for cls in functions_in("kinone.autograd"):
        doc = cls.__doc__ or ""
        assert "y =" in doc and "dL/d" in doc, (
            f"{cls.__qualname__}: docstring must state forward (y = ...) and gradient (dL/d...)"
        )


CASES = [(cls, i, sample) for cls, samples in SAMPLES.items() for i, sample in enumerate(samples)]


@pytest.mark.parametrize(
    "function, sample", [(cls, sample) for cls, _, sample in CASES], ids=[f"{cls.__name__}-{i}" for cls, i, _ in CASES]
)
def test_gradcheck(function, sample):
    fn, inputs, options = sample if len(sample) == 3 else (*sample, {})
    tensors = [Tensor(x.copy(), requires_grad=True) for x in inputs]
    with trace() as records:
        fn(*tensors)
    assert function in {rec.function for rec in records}, f"sample does not call {function.__name__}"
    assert gradcheck(fn, [Tensor(x, requires_grad=True) for x in inputs], **options)


def test_gradcheck_catches_a_wrong_gradient():
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

    with pytest.raises(ag.GradcheckError, match=r"input 0 \(shape \(3,\)\) fails at element"):
        gradcheck(lambda x: WrongSquare.apply(x), [Tensor(r(3), requires_grad=True)])


def test_gradcheck_directional_mode_for_large_inputs():
    x = Tensor(r(70, 70), requires_grad=True)
    assert gradcheck(lambda a: (a * a).tanh().sum(dim=1), [x], max_full_elements=100)

    class HalfWrong(Function):
        """y = 3x;  dL/dx = g (deliberately wrong)."""

        @staticmethod
        def forward(ctx, x):
            return 3 * x

        @staticmethod
        def backward(ctx, grad):
            return grad

    with pytest.raises(ag.GradcheckError, match="random direction"):
        gradcheck(lambda a: HalfWrong.apply(a), [x], max_full_elements=100)


def test_gradcheck_does_not_modify_the_callers_inputs():
    x = r(3, 4)
    before = x.copy()
    gradcheck(lambda a: a.exp(), [x])
    np.testing.assert_array_equal(x, before)
