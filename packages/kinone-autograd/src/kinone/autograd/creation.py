"""Creating tensors, and the functional forms of the multi-tensor ops."""

from __future__ import annotations

import numbers

import numpy as np

from .ops.joining import Cat, Maximum, Minimum, Stack, Where
from .tensor import DEFAULT_FLOAT, Tensor, _make_tensor

# One generator for randn/rand, seeded with `manual_seed` (as torch.manual_seed).
_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Seed the generator behind `randn` and `rand`; returns it."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def default_generator() -> np.random.Generator:
    """The generator behind `randn` and `rand` (its `bit_generator.state` can be saved)."""
    return _generator


def tensor(data, requires_grad: bool = False, dtype=None) -> Tensor:
    """A new leaf tensor holding a copy of `data` (as torch.tensor)."""
    if isinstance(data, Tensor):
        data = data.data
    array = np.array(data, dtype=dtype, copy=True) if isinstance(data, np.ndarray) else data
    return Tensor(array, requires_grad=requires_grad, dtype=dtype)


def _shape(shape) -> tuple:
    if len(shape) == 1 and not isinstance(shape[0], numbers.Integral):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def _filled(fill, shape, dtype, requires_grad) -> Tensor:
    return Tensor(np.full(_shape(shape), fill, dtype=dtype or DEFAULT_FLOAT), requires_grad=requires_grad)


def zeros(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    return _filled(0, shape, dtype, requires_grad)


def ones(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    return _filled(1, shape, dtype, requires_grad)


def full(shape, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    return _filled(fill_value, (shape,) if isinstance(shape, numbers.Integral) else (tuple(shape),), dtype, requires_grad)


def zeros_like(t, dtype=None, requires_grad: bool = False) -> Tensor:
    data = t.data if isinstance(t, Tensor) else np.asarray(t)
    return Tensor(np.zeros(data.shape, dtype=dtype or data.dtype), requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad: bool = False) -> Tensor:
    data = t.data if isinstance(t, Tensor) else np.asarray(t)
    return Tensor(np.ones(data.shape, dtype=dtype or data.dtype), requires_grad=requires_grad)


def randn(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples (float32 unless `dtype` is given)."""
    data = _generator.standard_normal(_shape(shape), dtype=np.float64).astype(dtype or DEFAULT_FLOAT)
    return Tensor(data, requires_grad=requires_grad)


def rand(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1) (float32 unless `dtype` is given)."""
    data = _generator.random(_shape(shape), dtype=np.float64).astype(dtype or DEFAULT_FLOAT)
    return Tensor(data, requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad: bool = False) -> Tensor:
    """Values from `start` to `end` (exclusive) by `step`; int64 for integers, float32 otherwise."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        integral = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = np.int64 if integral else DEFAULT_FLOAT
    return Tensor(np.arange(start, end, step, dtype=dtype), requires_grad=requires_grad)


def _as_tensor(x, like: Tensor | None = None) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if like is not None and isinstance(x, numbers.Number) and like.dtype.kind == "f":
        return _make_tensor(np.asarray(x, dtype=like.dtype), False, None)
    return Tensor(x)


def _first_tensor(*xs):
    return next((x for x in xs if isinstance(x, Tensor)), None)


def cat(tensors, dim: int = 0) -> Tensor:
    """Concatenate tensors along an existing dim."""
    return Cat.apply(*[_as_tensor(t) for t in tensors], dim=dim)


def stack(tensors, dim: int = 0) -> Tensor:
    """Stack same-shaped tensors along a new dim."""
    return Stack.apply(*[_as_tensor(t) for t in tensors], dim=dim)


def where(cond, a, b) -> Tensor:
    """Elementwise `a` where `cond` is true, else `b` (scalars take the other side's dtype)."""
    like = _first_tensor(a, b)
    return Where.apply(_as_tensor(cond), _as_tensor(a, like), _as_tensor(b, like))


def maximum(a, b) -> Tensor:
    """Elementwise maximum with broadcasting."""
    like = _first_tensor(a, b)
    return Maximum.apply(_as_tensor(a, like), _as_tensor(b, like))


def minimum(a, b) -> Tensor:
    """Elementwise minimum with broadcasting."""
    like = _first_tensor(a, b)
    return Minimum.apply(_as_tensor(a, like), _as_tensor(b, like))
