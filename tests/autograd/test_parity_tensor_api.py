"""Parity with PyTorch of the Tensor API of issue 16: the same inputs through Kinone and torch,
forward (values, dtype, indices) and backward (the gradient of a random cotangent), in
float64 and float32. A case is `fn(lib, x)` written once: `lib` is `kinone.autograd` or
`torch`, and the methods share their names in both."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import kinone.autograd as ag  # noqa: E402

rng = np.random.default_rng(16)


def normal(*shape):
    return rng.standard_normal(shape)


def distinct(*shape):
    return rng.permutation(np.arange(int(np.prod(shape)), dtype=np.float64)).reshape(shape) * 0.25 - 1


def inside(*shape):
    return rng.uniform(-0.9, 0.9, shape)


def positive(*shape):
    return rng.uniform(0.5, 2.0, shape)


def between_integers(*shape):
    return rng.integers(-3, 3, shape) + rng.uniform(0.15, 0.35, shape)


def ties(*shape):
    """Few distinct values: ties everywhere (arg-reductions pick the first; sorts stay stable)."""
    return rng.integers(0, 3, shape).astype(np.float64)


def _index(lib, array):
    return lib.tensor(np.asarray(array, dtype=np.int64))


CASES = {
    "sin": (lambda L, x: x.sin(), normal(3, 4)),
    "cos": (lambda L, x: L.cos(x), normal(3, 4)),
    "tan": (lambda L, x: x.tan(), inside(3, 4)),
    "asin": (lambda L, x: x.asin(), inside(3, 4)),
    "acos": (lambda L, x: L.acos(x), inside(3, 4)),
    "atan": (lambda L, x: x.atan(), normal(3, 4)),
    "sinh": (lambda L, x: x.sinh(), normal(3, 4)),
    "cosh": (lambda L, x: L.cosh(x), normal(3, 4)),
    "reciprocal": (lambda L, x: x.reciprocal(), positive(3, 4)),
    "rsqrt": (lambda L, x: x.rsqrt(), positive(3, 4)),
    "square": (lambda L, x: x.square(), normal(3, 4)),
    "pow": (lambda L, x: x.pow(3), normal(3, 4)),
    "pow_base": (lambda L, x: L.pow(2.0, x), normal(3, 4)),
    "abs": (lambda L, x: abs(x), normal(3, 4)),
    "sign": (lambda L, x: x.sign() * x, normal(3, 4)),
    "floor": (lambda L, x: x.floor() + x, between_integers(3, 4)),
    "ceil": (lambda L, x: x.ceil() * x, between_integers(3, 4)),
    "round": (lambda L, x: x.round() * x, between_integers(3, 4)),
    "round_decimals": (lambda L, x: x.round(decimals=1) + x, normal(3, 4)),
    "trunc": (lambda L, x: L.trunc(x) + x, between_integers(3, 4)),
    "prod": (lambda L, x: x.prod(), positive(2, 3)),
    "prod_dim_zeros": (lambda L, x: x.prod(1), np.array([[0.0, 1.5, 2.0], [0.0, 0.0, 3.0], [1.2, -0.7, 0.9]])),
    "prod_keepdim": (lambda L, x: L.prod(x, 0, keepdim=True), normal(3, 2)),
    "cumsum": (lambda L, x: x.cumsum(1), normal(3, 4)),
    "cumsum0": (lambda L, x: L.cumsum(x, dim=0), normal(3, 4)),
    "norm": (lambda L, x: x.norm(), normal(3, 4)),
    "norm_zero": (lambda L, x: (x * 0).norm() + x.sum(), normal(3)),
    "norm_p1": (lambda L, x: x.norm(p=1, dim=1), normal(3, 4)),
    "norm_p3": (lambda L, x: x.norm(p=3, dim=0, keepdim=True), normal(3, 4)),
    "norm_inf": (lambda L, x: x.norm(p=float("inf"), dim=1), distinct(3, 4)),
    "std": (lambda L, x: x.std(), normal(3, 4)),
    "std_dim": (lambda L, x: x.std(1, keepdim=True), normal(3, 4)),
    "std_correction": (lambda L, x: L.std(x, 0, correction=0), normal(3, 4)),
    "max_dim": (lambda L, x: x.max(1).values, ties(3, 5)),
    "max_dim_keepdim": (lambda L, x: L.max(x, 0, keepdim=True)[0], ties(3, 5)),
    "min_dim": (lambda L, x: x.min(dim=-1).values, ties(4, 3)),
    "max_all": (lambda L, x: x.max(), distinct(3, 4)),
    "max_other": (lambda L, x: x.max(x.flip(1)), distinct(3, 4)),
    "sort": (lambda L, x: x.sort(1).values, distinct(3, 5)),
    "sort_descending": (lambda L, x: L.sort(x, 0, descending=True)[0], distinct(4, 3)),
    "sort_stable_ties": (lambda L, x: x.sort(dim=1, stable=True).values, ties(3, 6)),
    "topk": (lambda L, x: x.topk(2).values, distinct(3, 5)),
    "topk_smallest": (lambda L, x: L.topk(x, 3, dim=0, largest=False).values, distinct(4, 3)),
    "gather": (lambda L, x: x.gather(1, _index(L, [[0, 0, 2], [1, 3, 1]])), normal(2, 4)),
    "scatter": (lambda L, x: x.scatter(1, _index(L, [[2, 0], [1, 3]]), x[:, :2] * 3), normal(2, 4)),
    "scatter_value": (lambda L, x: x.scatter(0, _index(L, [[1, 0, 1]]), 0.5), normal(2, 3)),
    "masked_fill": (lambda L, x: x.masked_fill(x > 0, -1.0), normal(3, 4)),
    "flip": (lambda L, x: x.flip(0, 1) if L is torch else x.flip((0, 1)), normal(3, 4)),
    "flip_function": (lambda L, x: L.flip(x, (1,)), normal(3, 4)),
    "roll": (lambda L, x: x.roll(1, 1), normal(3, 4)),
    "roll_flat": (lambda L, x: L.roll(x, -2), normal(3, 4)),
    "roll_dims": (lambda L, x: x.roll((1, -1), (0, 1)), normal(3, 4)),
    "repeat": (lambda L, x: x.repeat(2, 3), normal(2, 3)),
    "repeat_new_dims": (lambda L, x: x.repeat(2, 1, 2), normal(3, 2)),
    "chunk": (lambda L, x: x.chunk(3, 1)[1] * 2, normal(2, 7)),
    "split": (lambda L, x: L.split(x, [1, 2], dim=0)[1], normal(3, 4)),
    "split_size": (lambda L, x: x.split(3, 1)[-1], normal(2, 7)),
    "clone": (lambda L, x: x.clone() * x, normal(3, 4)),
    "contiguous": (lambda L, x: x.t().contiguous() if L is torch else x.T.contiguous(), normal(3, 4)),
    "view_as": (lambda L, x: x.view_as(L.zeros(4, 3, dtype=x.dtype)), normal(3, 4)),
    "expand_as": (lambda L, x: x.expand_as(L.zeros(2, 3, 4, dtype=x.dtype)), normal(3, 1)),
    "type_as": (lambda L, x: x.type_as(L.zeros(1, dtype=L.float64)) * 2, normal(3)),
    "flatten_function": (lambda L, x: L.flatten(x, 1), normal(2, 3, 4)),
    "clamp_function": (lambda L, x: L.clamp(x, -0.5, 0.5), normal(3, 4)),
    "sum_function": (lambda L, x: L.sum(x, 1), normal(3, 4)),
    "add_alpha": (lambda L, x: L.add(x, x * x, alpha=0.5), normal(3, 4)),
    "sub_alpha": (lambda L, x: x.sub(x.exp(), alpha=2), normal(3, 4)),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(CASES))
def test_parity(name, dtype):
    fn, data = CASES[name]
    data = data.astype(dtype)
    kx = ag.tensor(data, requires_grad=True)
    tx = torch.tensor(data, requires_grad=True)
    k_out, t_out = fn(ag, kx), fn(torch, tx)
    assert k_out.shape == tuple(t_out.shape), name
    assert k_out.dtype == t_out.detach().numpy().dtype, name
    rtol, atol = (1e-10, 1e-12) if dtype == np.float64 else (1e-5, 1e-6)
    np.testing.assert_allclose(k_out.numpy(), t_out.detach().numpy(), rtol=rtol, atol=atol)
    cotangent = rng.standard_normal(k_out.shape).astype(dtype)
    k_out.backward(ag.tensor(cotangent))
    t_out.backward(torch.tensor(cotangent))
    np.testing.assert_allclose(kx.grad.numpy(), tx.grad.numpy(), rtol=rtol * 10, atol=atol * 10)


INDEX_CASES = {
    "argmax": (lambda L, x: x.argmax(), ties(3, 5)),
    "argmax_dim": (lambda L, x: x.argmax(1), ties(3, 5)),
    "argmax_keepdim_all": (lambda L, x: L.argmax(x, keepdim=True), ties(3, 5)),
    "argmin_dim": (lambda L, x: L.argmin(x, dim=0, keepdim=True), ties(3, 5)),
    "max_indices": (lambda L, x: x.max(1).indices, ties(4, 5)),
    "min_indices": (lambda L, x: L.min(x, 0)[1], ties(4, 5)),
    "sort_indices_stable": (lambda L, x: x.sort(dim=1, stable=True).indices, ties(3, 8)),
    "sort_indices_descending_stable": (lambda L, x: x.sort(dim=1, descending=True, stable=True).indices, ties(3, 8)),
    "argsort": (lambda L, x: L.argsort(x, dim=0), distinct(4, 3)),
    "topk_indices": (lambda L, x: x.topk(3, dim=1).indices, distinct(3, 6)),
    "eq": (lambda L, x: x.eq(x.round()), ties(3, 4)),
    "ne": (lambda L, x: L.ne(x, 1.0), ties(3, 4)),
    "lt": (lambda L, x: x.lt(1.0), ties(3, 4)),
    "le": (lambda L, x: L.le(x, 1.0), ties(3, 4)),
    "gt": (lambda L, x: x.gt(x.flip(0)), ties(3, 4)),
    "ge": (lambda L, x: L.ge(x, 1.0), ties(3, 4)),
    "long": (lambda L, x: (x * 3).long(), normal(3, 4)),
    "int": (lambda L, x: (x * 3).int(), normal(3, 4)),
    "bool": (lambda L, x: x.bool(), ties(3, 4)),
    "to_dtype": (lambda L, x: x.to(L.int64), ties(3, 4)),
    "floor_int": (lambda L, x: x.long().floor(), ties(3, 4)),
    "sign_int": (lambda L, x: (x.long() - 1).sign(), ties(3, 4)),
    "cumsum_int": (lambda L, x: x.int().cumsum(0), ties(3, 4)),
    "prod_int": (lambda L, x: x.int().prod(1), ties(3, 4)),
    "sin_int": (lambda L, x: x.long().sin(), ties(3, 4)),
}


@pytest.mark.parametrize("name", sorted(INDEX_CASES))
def test_integer_and_boolean_results(name):
    fn, data = INDEX_CASES[name]
    k_out, t_out = fn(ag, ag.tensor(data)), fn(torch, torch.tensor(data))
    assert k_out.dtype == t_out.numpy().dtype, name
    np.testing.assert_allclose(k_out.numpy(), t_out.numpy(), rtol=1e-6)  # exact for integers and bools


def test_named_tuples_read_as_in_torch():
    data = ties(4, 5)
    for op in ("max", "min"):
        k, t = getattr(ag.tensor(data), op)(1), getattr(torch.tensor(data), op)(1)
        assert k._fields == ("values", "indices") and type(k).__name__ == type(t).__name__
        values, indices = k
        np.testing.assert_array_equal(indices.numpy(), t.indices.numpy())
    k_sort, t_sort = ag.tensor(data).sort(), torch.tensor(data).sort(stable=True)
    assert type(k_sort).__name__ == type(t_sort).__name__ == "sort"
    assert type(ag.tensor(data).topk(1)).__name__ == type(torch.tensor(data).topk(1)).__name__ == "topk"


def test_size_numel_dim_and_creation_as_torch():
    data = normal(2, 3, 4)
    k, t = ag.tensor(data), torch.tensor(data)
    assert k.size() == t.size() and k.size(1) == t.size(1) and k.size(-1) == t.size(-1)
    assert k.numel() == t.numel() and k.dim() == t.dim() and k.size().numel() == t.size().numel()
    for name, args in [("linspace", (0.0, 1.0, 7)), ("logspace", (0.0, 2.0, 5)), ("eye", (3, 4)), ("eye", (3,))]:
        np.testing.assert_allclose(getattr(ag, name)(*args).numpy(), getattr(torch, name)(*args).numpy(), rtol=1e-6)
        assert getattr(ag, name)(*args).dtype == getattr(torch, name)(*args).numpy().dtype
    for name in ("float32", "float", "float64", "double", "int64", "long", "int32", "int", "bool"):
        assert np.dtype(getattr(ag, name)) == torch.tensor([], dtype=getattr(torch, name)).numpy().dtype, name
