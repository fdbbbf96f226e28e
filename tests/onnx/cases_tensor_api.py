"""ONNX converter cases of the Tensor-API Functions (issue 16), merged into
test_converters.CASES: each is exported at opset 17 (and another where the form changes),
checked, and run by onnxruntime at two batch sizes against Kinone."""

from __future__ import annotations

import numpy as np

from kinone.autograd import Tensor
from kinone.autograd.ops import elementwise as E
from kinone.autograd.ops import gather_scatter as GS
from kinone.autograd.ops import reduction as R
from kinone.autograd.ops import shape as S
from kinone.autograd.ops import sorting as SO
from kinone.autograd.ops import unary_math as U

INDEX = Tensor(np.array([[0, 2, 2], [1, 0, 3]], dtype=np.int64))
ROWS = Tensor(np.array([[1, 0, 1, 0]], dtype=np.int64))


def bounded(x):
    """x squeezed into (-0.9, 0.9): the domain of asin and acos."""
    return x.tanh() * 0.9


CASES = {
    U.Sin: [(lambda x: x.sin(), (2, 3))],
    U.Cos: [(lambda x: x.cos(), (2, 3))],
    U.Tan: [(lambda x: bounded(x).tan(), (2, 3))],
    U.Asin: [(lambda x: bounded(x).asin(), (2, 3))],
    U.Acos: [(lambda x: bounded(x).acos(), (2, 3))],
    U.Atan: [(lambda x: x.atan(), (2, 3))],
    U.Sinh: [(lambda x: x.sinh(), (2, 3))],
    U.Cosh: [(lambda x: x.cosh(), (2, 3))],
    U.Reciprocal: [(lambda x: (x.abs() + 0.5).reciprocal(), (2, 3))],
    U.Rsqrt: [(lambda x: (x.abs() + 0.5).rsqrt(), (2, 3))],
    U.Sign: [(lambda x: x.sign(), (2, 3))],
    U.Floor: [(lambda x: (x * 3).floor(), (2, 3))],
    U.Ceil: [(lambda x: (x * 3).ceil(), (2, 3))],
    U.Trunc: [(lambda x: (x * 3).trunc(), (2, 3))],
    U.Round: [(lambda x: (x * 3).round(), (2, 3)), (lambda x: x.round(decimals=2), (2, 3))],
    E.Clone: [(lambda x: x.clone() * 2, (2, 3))],
    SO.ArgMax: [
        (lambda x: x.argmax(1), (2, 5)),
        (lambda x: x.argmax(-1, keepdim=True), (2, 3, 4)),
        (lambda x: x.argmax(), (2, 5), {"dynamic_batch": False}),
        (lambda x: x.max(1).values, (2, 5)),
    ],
    SO.ArgMin: [
        (lambda x: x.argmin(0), (2, 5), {"dynamic_batch": False}),
        (lambda x: x.min(2, keepdim=True).values, (2, 3, 4)),
    ],
    SO.Argsort: [
        (lambda x: x.argsort(1), (2, 5)),
        (lambda x: x.sort(-1, descending=True).values, (2, 3, 4)),
        (lambda x: x.sort(0).indices, (3, 4), {"opset": 13}),
    ],
    SO.TopKIndices: [
        (lambda x: x.topk(2).indices, (2, 5)),
        (lambda x: x.topk(3, dim=1, largest=False).values, (2, 4, 3)),
    ],
    GS.Gather: [
        (lambda x: x.gather(1, INDEX), (2, 4), {"dynamic_batch": False}),
        (lambda x: x.gather(1, x.argsort(1)[:, :2]), (2, 4)),
    ],
    GS.Scatter: [
        (lambda x: x.scatter(1, INDEX[:, :2], x[:, 1:3] * 2), (2, 4), {"dynamic_batch": False}),
        (lambda x: x.scatter(0, ROWS, value=7.0), (2, 4), {"dynamic_batch": False}),
        (lambda x: x.scatter(1, x.argsort(1)[:, :1], x * 2), (2, 4)),
    ],
    R.Prod: [
        (lambda x: x.prod(1), (2, 3)),
        (lambda x: x.prod(), (2, 3)),
        (lambda x: x.prod(-1, keepdim=True), (2, 3), {"opset": 18}),
    ],
    R.Cumsum: [(lambda x: x.cumsum(1), (2, 4)), (lambda x: x.cumsum(0), (2, 4))],
    R.Norm: [
        (lambda x: x.norm(dim=1), (2, 4)),
        (lambda x: x.norm(p=1, dim=-1, keepdim=True), (2, 3, 4)),
        (lambda x: x.norm(p=float("inf"), dim=1), (2, 4)),
        (lambda x: x.norm(p=3, dim=1), (2, 4)),
        (lambda x: x.norm(dim=1), (2, 4), {"opset": 18}),
    ],
    S.Flip: [(lambda x: x.flip(1), (2, 3)), (lambda x: x.flip((0, 2)), (2, 3, 4))],
    S.Roll: [
        (lambda x: x.roll(1, 1), (2, 4)),
        (lambda x: x.roll((-1, 2), (1, 2)), (2, 3, 4)),
        (lambda x: x.roll(3), (2, 4), {"dynamic_batch": False}),
    ],
    S.Repeat: [(lambda x: x.repeat(1, 2), (2, 3)), (lambda x: x.repeat(2, 1, 3), (2, 3))],
}
