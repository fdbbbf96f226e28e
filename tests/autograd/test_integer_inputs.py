"""Integer (and bool) tensors into floating ops follow PyTorch: the result is float32 (the
default float dtype) or the other operand's floating dtype, or the op refuses by name where
PyTorch refuses. Before: NumPy's rules, so int64 silently became float64.
"""

from __future__ import annotations

import numpy as np
import pytest

import kinone.autograd as ag
from kinone.autograd import Tensor, tensor

torch = pytest.importorskip("torch")

INTS = np.array([1, 2, 3], dtype=np.int64)
FLOATS = np.array([0.5, 1.5, 2.5], dtype=np.float32)
MATRIX_INTS = np.arange(6, dtype=np.int64).reshape(2, 3)
MATRIX_FLOATS = np.arange(6, dtype=np.float32).reshape(3, 2)


# Each case: fn(lib, ints, floats) with lib either kinone.autograd or torch; inputs are the
# framework's tensors. Methods have the same names in both libraries.
CASES = {
    "exp": lambda L, i, f: i.exp(),
    "log": lambda L, i, f: i.log(),
    "sqrt": lambda L, i, f: i.sqrt(),
    "tanh": lambda L, i, f: i.tanh(),
    "sigmoid": lambda L, i, f: i.sigmoid(),
    "bool exp": lambda L, i, f: (i > 1).exp(),
    "int / int": lambda L, i, f: i / i,
    "int / 2": lambda L, i, f: i / 2,
    "1.5 / int": lambda L, i, f: 1.5 / i,
    "int / float": lambda L, i, f: i / f,
    "int * 2.0": lambda L, i, f: i * 2.0,
    "int - 1.5": lambda L, i, f: i - 1.5,
    "1.5 - int": lambda L, i, f: 1.5 - i,
    "int + float": lambda L, i, f: i + f,
    "float * int": lambda L, i, f: f * i,
    "bool * float": lambda L, i, f: (i > 1) * f,
    "int + float64": lambda L, i, f: i + f.double(),
    "int ** 0.5": lambda L, i, f: i**0.5,
    "2.0 ** int": lambda L, i, f: 2.0**i,
    "float ** int": lambda L, i, f: f**i,
    "logsumexp": lambda L, i, f: i.logsumexp(0),
    "maximum": lambda L, i, f: L.maximum(i, f),
    "minimum": lambda L, i, f: L.minimum(f, i),
    "where": lambda L, i, f: L.where(i > 1, i, f),
    "cat": lambda L, i, f: L.cat([i, f]),
    "stack": lambda L, i, f: L.stack([f, i]),
    "clamp float bound": lambda L, i, f: i.clamp(min=1.5),
    # Integer results stay integer, in both.
    "int * 2": lambda L, i, f: i * 2,
    "int ** 2": lambda L, i, f: i**2,
    "sum": lambda L, i, f: i.sum(),
    "relu": lambda L, i, f: i.relu(),
    "abs": lambda L, i, f: i.abs(),
    "clamp int bound": lambda L, i, f: i.clamp(min=2),
    "amax": lambda L, i, f: i.amax(),
}


def _inputs(L):
    if L is torch:
        return torch.from_numpy(INTS.copy()), torch.from_numpy(FLOATS.copy())
    return tensor(INTS), tensor(FLOATS)


def _dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


@pytest.mark.parametrize("name", list(CASES))
def test_result_dtype_and_values_match_pytorch(name):
    fn = CASES[name]
    expected = fn(torch, *_inputs(torch))
    got = fn(ag, *_inputs(ag))
    assert str(got.dtype) == _dtype_name(expected.dtype), f"{name}: kinone {got.dtype}, torch {expected.dtype}"
    np.testing.assert_allclose(got.data, expected.numpy(), rtol=1e-6)


def test_integer_matmul_stays_integer():
    got = tensor(MATRIX_INTS) @ tensor(MATRIX_INTS.T)
    expected = torch.from_numpy(MATRIX_INTS) @ torch.from_numpy(MATRIX_INTS.T)
    assert got.dtype == np.int64 and expected.dtype == torch.int64
    np.testing.assert_array_equal(got.data, expected.numpy())


REFUSED = {
    "mean": (lambda L, i, f: i.mean(), "mean"),
    "var": (lambda L, i, f: i.var(), "var"),
    "softmax": (lambda L, i, f: i.softmax(0), "softmax"),
    "log_softmax": (lambda L, i, f: i.log_softmax(0), "log_softmax"),
    "int ** -1": (lambda L, i, f: i ** (-1), "pow"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_where_pytorch_refuses(name):
    fn, op = REFUSED[name]
    with pytest.raises((RuntimeError, NotImplementedError)):
        fn(torch, *_inputs(torch))
    with pytest.raises((TypeError, ValueError), match=op) as info:
        fn(ag, *_inputs(ag))
    assert "\n" not in str(info.value)


def test_matmul_of_int_and_float_is_refused_as_in_pytorch():
    with pytest.raises(RuntimeError):
        torch.from_numpy(MATRIX_INTS) @ torch.from_numpy(MATRIX_FLOATS)
    with pytest.raises(TypeError, match=r"matmul: .*int64.*float32"):
        tensor(MATRIX_INTS) @ tensor(MATRIX_FLOATS)


def test_requires_grad_on_an_integer_tensor_is_refused():
    with pytest.raises(RuntimeError):
        torch.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        Tensor(INTS, requires_grad=True)


def test_gradient_flows_to_the_float_side_of_a_mixed_op():
    f = Tensor(FLOATS.copy(), requires_grad=True)
    y = (tensor(INTS) * f).sum()
    assert y.dtype == np.float32
    y.backward()
    assert f.grad.dtype == np.float32
    np.testing.assert_array_equal(f.grad.data, INTS.astype(np.float32))
