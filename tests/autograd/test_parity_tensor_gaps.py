"""Parity with PyTorch 2.13 for the Tensor API that pytorch/examples still lacked: `tril`/`triu`,
`x[index] = value` (values and gradients through the written tensor's history and the value),
`mm`, `narrow`, `t`, `mT`, `type`, `new_*`, `__format__` and the device flags.

Differentiable cases are written once as `fn(*xs)` in the spelling both libraries share; inputs
are float64 leaves that require grad, the output is pulled back with the same random cotangent,
and the output and every input's gradient are compared.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import kinone.autograd as ag  # noqa: E402
from kinone.autograd import Tensor  # noqa: E402

rng = np.random.default_rng(1617)


def r(*shape):
    return rng.standard_normal(shape)


def _set(index):
    def fn(a, v):
        y = a * 1.0
        y[index] = v
        return y * a

    return fn


def _positional(v):
    y = v.new_zeros(4, 6)
    y[:, 0::2] = v.sin()
    y[:, 1::2] = v.cos()
    return y


def _chain(a, b):
    y = a * 2.0
    y[0] = b.sum()
    y[1:, 1] = y[1:, 1] + b[:2]  # reads the written tensor, then writes it
    return y.exp()


def _into_no_grad(v):
    y = v.detach() * 0.0  # does not require grad; becomes part of the graph through v
    y[1] = v[0] * 3.0
    return y


CASES = {
    "tril": (lambda a: a.tril(), [r(4, 4)]),
    "tril diagonal batch": (lambda a: a.tril(diagonal=1), [r(2, 3, 5)]),
    "tril negative": (lambda a: a.tril(-2), [r(5, 3)]),
    "torch.tril": (lambda a: ag_or_torch(a).tril(a, 1), [r(3, 4)]),
    "triu": (lambda a: a.triu(), [r(4, 4)]),
    "triu diagonal batch": (lambda a: a.triu(diagonal=-1), [r(2, 5, 3)]),
    "torch.triu": (lambda a: ag_or_torch(a).triu(a, diagonal=2), [r(3, 5)]),
    "setitem slice step": (_set((slice(None), slice(0, None, 2))), [r(3, 4), r(3, 2)]),
    "setitem int row, broadcast": (_set(1), [r(3, 4), r(4)]),
    "setitem ellipsis": (_set((Ellipsis, 0)), [r(2, 3, 4), r(3)]),
    "setitem 0-d into a column": (_set((slice(None), 2)), [r(3, 4), r()]),
    "setitem negative slice": (_set(slice(-2, None)), [r(4, 3), r(1, 3)]),
    "setitem positional encoding": (_positional, [r(4, 3)]),
    "setitem chain": (_chain, [r(3, 4), r(3)]),
    "setitem into a tensor without grad": (_into_no_grad, [r(3)]),
    "mm": (lambda a, b: a.mm(b), [r(3, 4), r(4, 2)]),
    "torch.mm": (lambda a, b: ag_or_torch(a).mm(a, b), [r(2, 3), r(3, 5)]),
    "narrow": (lambda a: a.narrow(1, 1, 2) * 2.0, [r(3, 4)]),
    "narrow negative start": (lambda a: a.narrow(0, -2, 2), [r(4, 3)]),
    "torch.narrow": (lambda a: ag_or_torch(a).narrow(a, -1, 0, 3), [r(2, 5)]),
    "t": (lambda a, b: a.t() @ b, [r(3, 4), r(3, 2)]),
    "t of 1-D": (lambda a: a.t() * a, [r(4)]),
    "mT": (lambda a: a.mT.exp(), [r(2, 3, 4)]),
    "type(float32) keeps the graph": (lambda a: a.type(dtype_of(a, "float32")) * 2.0, [r(3)]),
}


def ag_or_torch(x):
    """The namespace the tensor belongs to (torch, or kinone.autograd), for the function forms."""
    return torch if isinstance(x, torch.Tensor) else ag


def dtype_of(x, name):
    return getattr(torch if isinstance(x, torch.Tensor) else ag, name)


def _run(lib, fn, arrays, seed):
    make = (
        (lambda x: torch.tensor(x, requires_grad=True))
        if lib == "torch"
        else (lambda x: Tensor(x.copy(), requires_grad=True))
    )
    xs = [make(x) for x in arrays]
    out = fn(*xs)
    g = np.random.default_rng(seed).standard_normal(tuple(out.shape))
    out.backward(torch.tensor(g, dtype=out.dtype) if lib == "torch" else Tensor(g.astype(out.dtype)))
    value = out.detach().numpy()
    grads = [None if x.grad is None else x.grad.detach().numpy() if lib == "torch" else x.grad.numpy() for x in xs]
    return value, str(out.dtype).replace("torch.", ""), grads


@pytest.mark.parametrize("name", list(CASES))
def test_values_and_gradients_match_torch(name):
    fn, arrays = CASES[name]
    seed = abs(hash(name)) % 2**31
    value, dtype, grads = _run("kinone", fn, arrays, seed)
    t_value, t_dtype, t_grads = _run("torch", fn, arrays, seed)
    assert dtype == t_dtype
    np.testing.assert_allclose(value, t_value, rtol=1e-12, atol=1e-12)
    for i, (grad, t_grad) in enumerate(zip(grads, t_grads, strict=True)):
        assert (grad is None) == (t_grad is None), f"input {i}: gradient present in one library only"
        if grad is not None:
            np.testing.assert_allclose(grad, t_grad, rtol=1e-12, atol=1e-12, err_msg=f"input {i}")


@pytest.mark.parametrize(
    "dtype",
    ["float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool", "complex64", "complex128"],
)
def test_type_names_match_torch(dtype):
    t = torch.zeros(2, dtype=getattr(torch, dtype))
    k = ag.zeros(2, dtype=np.dtype(dtype))
    assert k.type() == t.type()
    # and back: the name, as a string, casts to that dtype
    assert ag.zeros(2, dtype=np.float32).type(t.type()).dtype == np.dtype(dtype)


def test_type_casts_as_torch():
    x = np.array([1.7, -2.2, 0.0], dtype=np.float32)
    for target in ("torch.LongTensor", "torch.DoubleTensor", "torch.BoolTensor"):
        np.testing.assert_array_equal(Tensor(x).type(target).numpy(), torch.tensor(x).type(target).numpy())
    np.testing.assert_array_equal(Tensor(x).type(ag.int64).numpy(), torch.tensor(x).type(torch.int64).numpy())
    k, t = Tensor(x), torch.tensor(x)
    assert (k.type(ag.float32) is k) and (t.type(torch.float32) is t)  # no copy when nothing changes


@pytest.mark.parametrize("spec", ["+.2f", ".3e", "", "8.4f", "g"])
def test_format_of_0d_tensors_matches_torch(spec):
    for value in (1.23456, -0.5):
        assert format(Tensor(np.float32(value)), spec) == format(torch.tensor(value), spec)
    integer_spec = spec.replace(".4f", "d").replace(".2f", "d").replace(".3e", "d").replace("g", "d")
    assert format(Tensor(np.int64(-7)), integer_spec) == format(torch.tensor(-7), integer_spec)


def test_format_of_other_tensors_refuses_a_spec_as_torch():
    with pytest.raises(TypeError):
        format(torch.zeros(2), "+.2f")
    with pytest.raises(TypeError, match="unsupported format string"):
        format(ag.zeros(2), "+.2f")
    assert format(ag.zeros(2), "") == str(ag.zeros(2))


def test_regression_poly_desc_formats_as_torch():
    """pytorch/examples' regression prints its polynomial with '{:+.2f}'.format(w) per 0-d row."""
    w = rng.standard_normal(4).astype(np.float32)

    def poly_desc(W, b):  # the example's own code
        result = "y = "
        for i, w in enumerate(W):
            result += "{:+.2f} x^{} ".format(w, i + 1)  # noqa: UP032
        result += "{:+.2f}".format(b[0])  # noqa: UP032
        return result

    assert poly_desc(Tensor(w), Tensor(w[:1])) == poly_desc(torch.tensor(w), torch.tensor(w[:1]))


@pytest.mark.parametrize(
    "method, args",
    [
        ("new_zeros", ((2, 3),)),
        ("new_ones", (2, 3)),
        ("new_empty", ((4,),)),
        ("new_full", ((2, 2), 1.5)),
        ("new_tensor", ([[1.7, 2.0]],)),
    ],
)
@pytest.mark.parametrize("dtype", ["float64", "int64"])
def test_new_methods_match_torch(method, args, dtype):
    k_self, t_self = ag.zeros(1, dtype=np.dtype(dtype)), torch.zeros(1, dtype=getattr(torch, dtype))
    k, t = getattr(k_self, method)(*args), getattr(t_self, method)(*args)
    assert k.shape == tuple(t.shape) and str(k.dtype) == str(t.dtype).replace("torch.", "")
    assert k.is_leaf and not k.requires_grad
    if method != "new_empty":
        np.testing.assert_array_equal(k.numpy(), t.numpy())
    other = getattr(k_self, method)(*args, dtype=ag.float32, requires_grad=True)
    assert other.dtype == np.float32 and other.requires_grad and other.is_leaf


def test_setitem_values_and_dtypes_as_torch():
    """Writes without grad: a float into an integer tensor truncates, a boolean mask, an integer
    index, leading 1s on the value, a tensor index."""
    k, t = ag.zeros(3, 4, dtype=np.int64), torch.zeros(3, 4, dtype=torch.int64)
    for lib, x in (("k", k), ("t", t)):
        make = Tensor if lib == "k" else torch.tensor
        x[0] = 1.7
        x[1, 1:3] = make(np.array([2.9, -3.9]))
        x[make(np.array([2, 2]))] = 5
        x[x == 5] = 6
        x[0:1] = make(np.full((1, 1, 4), 7))
    np.testing.assert_array_equal(k.numpy(), t.numpy())


def test_device_flags_match_torch():
    k, t = ag.zeros(2), torch.zeros(2)
    assert (k.is_cpu, k.is_cuda, k.is_xpu, k.is_mps) == (t.is_cpu, t.is_cuda, t.is_xpu, t.is_mps)


@pytest.mark.parametrize(
    "call",
    [
        lambda lib, x: x.t() if x.ndim == 3 else x.mm(x),
        lambda lib, x: x.narrow(0, 0, 5),
        lambda lib, x: x.narrow(0, -4, 1),
        lambda lib, x: lib.tril(x[0, 0]),
        lambda lib, x: x[0, 0].mT,
    ],
)
def test_errors_where_torch_raises(call):
    x = np.zeros((2, 3, 4))
    with pytest.raises((RuntimeError, IndexError)):
        call(torch, torch.tensor(x))
    with pytest.raises((RuntimeError, IndexError)):
        call(ag, Tensor(x))


@pytest.mark.parametrize("args", [(3,), (2, 3), ([1.7, 2.2],), ((4, 5),), ()])
@pytest.mark.parametrize("name", ["FloatTensor", "DoubleTensor", "LongTensor", "IntTensor", "BoolTensor", "ByteTensor"])
def test_legacy_constructors_match_torch(name, args):
    k, t = getattr(ag, name)(*args), getattr(torch, name)(*args)
    assert k.shape == tuple(t.shape) and k.type() == t.type()
    assert isinstance(k, getattr(ag, name)) and isinstance(t, getattr(torch, name))
    if len(args) == 1 and not isinstance(args[0], int):  # data, not a shape (torch leaves a shape uninitialised)
        np.testing.assert_array_equal(k.numpy(), t.numpy())
