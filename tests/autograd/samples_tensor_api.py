"""Gradcheck samples of the Tensor-API Functions (issue 16): index ops (through the values they
pick), gather/scatter, trigonometric and step functions, prod/cumsum/norm, flip/roll/repeat,
clone. Merged into test_gradcheck.SAMPLES (and so run on the stand-in CUDA device too).

Index tensors are made on the input's device (`_on`), since an op refuses two devices.
"""

from __future__ import annotations

import numpy as np

from kinone.autograd import Tensor
from kinone.autograd.ops import elementwise, gather_scatter, reduction, shape, sorting, unary_math

rng = np.random.default_rng(1616)


def r(*shape):
    return rng.standard_normal(shape)


def inside(*shape, bound=0.9):
    """Samples in (-bound, bound): the domain of asin/acos, away from tan's poles."""
    return rng.uniform(-bound, bound, shape)


def pos(*shape):
    return rng.uniform(0.5, 2.0, shape)


def away(*shape):
    return rng.uniform(0.2, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


def distinct(*shape):
    """Well-separated values (no ties for sorting and arg-reductions)."""
    return rng.permutation(np.arange(int(np.prod(shape)), dtype=np.float64)).reshape(shape) * 0.3 - 1


def between_integers(*shape):
    """Values 0.15 to 0.35 past an integer: away from every step of floor, ceil, round, trunc."""
    return rng.integers(-3, 3, shape) + rng.uniform(0.15, 0.35, shape)


def _on(like: Tensor, array) -> Tensor:
    return Tensor(np.asarray(array)).to(like.device)


GATHER_INDEX = [[0, 0, 2], [1, 3, 1]]  # repeats: their gradients add up
SCATTER_INDEX = [[2, 0], [1, 3]]  # distinct per row: every written element is read once

SAMPLES = {
    sorting.ArgMax: [
        (lambda a: a.max(1).values, [distinct(3, 4)]),
        (lambda a: a.max(0, keepdim=True).values * 2, [distinct(3, 4)]),
    ],
    sorting.ArgMin: [(lambda a: a.min(-1).values, [distinct(2, 5)])],
    sorting.Argsort: [
        (lambda a: a.sort(1).values, [distinct(3, 4)]),
        (lambda a: a.sort(0, descending=True).values, [distinct(3, 4)]),
    ],
    sorting.TopKIndices: [
        (lambda a: a.topk(2).values, [distinct(3, 5)]),
        (lambda a: a.topk(2, dim=0, largest=False).values, [distinct(4, 3)]),
    ],
    gather_scatter.Gather: [
        (lambda a: a.gather(1, _on(a, GATHER_INDEX)), [r(2, 4)]),
        (lambda a: a.gather(0, _on(a, [[1, 0], [1, 1]])), [r(3, 3)]),
    ],
    gather_scatter.Scatter: [
        (lambda a, s: a.scatter(1, _on(a, SCATTER_INDEX), s), [r(2, 4), r(2, 3)]),
        (lambda a: a.scatter(1, _on(a, SCATTER_INDEX), value=0.5), [r(2, 4)]),
    ],
    unary_math.Sin: [(lambda a: a.sin(), [r(3, 4)])],
    unary_math.Cos: [(lambda a: a.cos(), [r(3, 4)])],
    unary_math.Tan: [(lambda a: a.tan(), [inside(3, 4, bound=1.2)])],
    unary_math.Asin: [(lambda a: a.asin(), [inside(3, 4)])],
    unary_math.Acos: [(lambda a: a.acos(), [inside(3, 4)])],
    unary_math.Atan: [(lambda a: a.atan(), [r(3, 4)])],
    unary_math.Sinh: [(lambda a: a.sinh(), [r(3, 4)])],
    unary_math.Cosh: [(lambda a: a.cosh(), [r(3, 4)])],
    unary_math.Reciprocal: [(lambda a: a.reciprocal(), [away(3, 4)])],
    unary_math.Rsqrt: [(lambda a: a.rsqrt(), [pos(3, 4)])],
    unary_math.Sign: [(lambda a: a.sign() * a, [away(3, 4)])],
    unary_math.Floor: [(lambda a: a.floor() + a, [between_integers(3, 4)])],
    unary_math.Ceil: [(lambda a: a.ceil() * a, [between_integers(3, 4)])],
    unary_math.Trunc: [(lambda a: a.trunc() + a, [between_integers(3, 4)])],
    unary_math.Round: [
        (lambda a: a.round() * a, [between_integers(3, 4)]),
        (lambda a: a.round(decimals=1) + a, [np.array([0.123, -1.234, 2.061])]),
    ],
    reduction.Prod: [
        (lambda a: a.prod(), [pos(2, 3)]),
        (lambda a: a.prod(1), [np.array([[0.0, 1.5, 2.0], [0.0, 0.0, 3.0], [1.2, -0.7, 0.9]])]),
        (lambda a: a.prod(0, keepdim=True), [r(3, 2)]),
    ],
    reduction.Cumsum: [(lambda a: a.cumsum(1), [r(2, 4)]), (lambda a: a.cumsum(0), [r(3, 2)])],
    reduction.Norm: [
        (lambda a: a.norm(), [r(3, 4)]),
        (lambda a: a.norm(p=1, dim=1), [away(3, 4)]),
        (lambda a: a.norm(p=3, dim=0, keepdim=True), [away(3, 4)]),
        (lambda a: a.norm(p=float("inf"), dim=1), [distinct(3, 4)]),
    ],
    shape.Flip: [(lambda a: a.flip(1), [r(3, 4)]), (lambda a: a.flip((0, 2)), [r(2, 3, 4)])],
    shape.Roll: [
        (lambda a: a.roll(1, 1), [r(3, 4)]),
        (lambda a: a.roll(-2), [r(3, 4)]),
        (lambda a: a.roll((1, -1), (0, 1)), [r(3, 4)]),
    ],
    shape.Repeat: [(lambda a: a.repeat(2, 3), [r(2, 3)]), (lambda a: a.repeat(2, 1, 2), [r(3, 2)])],
    elementwise.Clone: [(lambda a: a.clone() * a, [r(3, 4)]), (lambda a: a.T.contiguous(), [r(3, 4)])],
}
