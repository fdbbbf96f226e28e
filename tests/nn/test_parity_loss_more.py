"""Parity with torch.nn: binary_cross_entropy, l1_loss, smooth_l1_loss, kl_div and
cosine_similarity (functional and modules: value, input and target gradients, every reduction,
float64 and float32), and the legacy size_average / reduce flags."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

from kinone import nn  # noqa: E402
from kinone.autograd import Tensor  # noqa: E402
from kinone.nn import functional as F  # noqa: E402

TOLERANCES = {np.float64: (1e-7, 1e-10), np.float32: (1e-4, 1e-5)}
DTYPES = [np.float64, np.float32]
REDUCTIONS = ["none", "mean", "sum"]


def check(ours, theirs, dtype, what):
    rtol, atol = TOLERANCES[dtype]
    ours = ours.data if isinstance(ours, Tensor) else ours
    theirs = theirs.detach().numpy()
    assert ours.dtype == theirs.dtype == dtype, f"{what}: dtypes {ours.dtype} and {theirs.dtype}"
    assert ours.shape == theirs.shape, f"{what}: shapes {ours.shape} and {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, err_msg=what)


def compare(ours_fn, theirs_fn, inputs, dtype, seed=0):
    """Value and the gradient of every input, for a random upstream gradient."""
    ours = [Tensor(a.astype(dtype), requires_grad=True) for a in inputs]
    theirs = [torch.tensor(a.astype(dtype), requires_grad=True) for a in inputs]
    y_k, y_t = ours_fn(*ours), theirs_fn(*theirs)
    check(y_k, y_t, dtype, "value")
    upstream = np.random.default_rng(seed).standard_normal(y_t.shape).astype(dtype)
    (y_k * Tensor(upstream)).sum().backward()
    (y_t * torch.tensor(upstream)).sum().backward()
    for i, (k, t) in enumerate(zip(ours, theirs)):
        check(k.grad, t.grad, dtype, f"gradient of input {i}")


rng = np.random.default_rng(23)
SHAPE = (4, 5)
PROBS, TARGETS = rng.uniform(0.01, 0.99, SHAPE), rng.uniform(0, 1, SHAPE)
PROBS[0, :2] = [0.0, 1.0]  # the clamped logs (the target gradient differs there: not compared on this row)
X, T = rng.standard_normal(SHAPE) * 2, rng.standard_normal(SHAPE) * 2
T[0, 0] = X[0, 0]  # a zero difference: l1's and smooth l1's gradient is 0 there
LOGP = np.log(rng.dirichlet(np.ones(5), 4))
Q = rng.dirichlet(np.ones(5), 4)


@pytest.mark.parametrize("reduction, dtype", list(itertools.product(REDUCTIONS, DTYPES)))
def test_binary_cross_entropy(reduction, dtype):
    weight = rng.uniform(0.5, 2, (5,))
    compare(
        lambda x, t: F.binary_cross_entropy(x, t, Tensor(weight.astype(dtype)), reduction=reduction),
        lambda x, t: TF.binary_cross_entropy(x, t, torch.tensor(weight.astype(dtype)), reduction=reduction),
        [PROBS[1:], TARGETS[1:]],
        dtype,
    )
    # x = 0 and 1: the loss is clamped (finite) and the input gradient matches
    x_k, x_t = (
        Tensor(PROBS[:1].astype(dtype), requires_grad=True),
        torch.tensor(PROBS[:1].astype(dtype), requires_grad=True),
    )
    y_k = F.binary_cross_entropy(x_k, Tensor(TARGETS[:1].astype(dtype)), reduction=reduction)
    y_t = TF.binary_cross_entropy(x_t, torch.tensor(TARGETS[:1].astype(dtype)), reduction=reduction)
    check(y_k, y_t, dtype, "clamped value")
    y_k.sum().backward()
    y_t.sum().backward()
    check(x_k.grad, x_t.grad, dtype, "input gradient at 0 and 1")


@pytest.mark.parametrize("reduction, dtype", list(itertools.product(REDUCTIONS, DTYPES)))
def test_l1_loss(reduction, dtype):
    compare(
        lambda x, t: F.l1_loss(x, t, reduction=reduction),
        lambda x, t: TF.l1_loss(x, t, reduction=reduction),
        [X, T],
        dtype,
    )


@pytest.mark.parametrize("reduction, beta, dtype", list(itertools.product(REDUCTIONS, [1.0, 0.5, 0.0, 3.0], DTYPES)))
def test_smooth_l1_loss(reduction, beta, dtype):
    compare(
        lambda x, t: F.smooth_l1_loss(x, t, reduction=reduction, beta=beta),
        lambda x, t: TF.smooth_l1_loss(x, t, reduction=reduction, beta=beta),
        [X, T],
        dtype,
    )


@pytest.mark.parametrize(
    "reduction, log_target, dtype", list(itertools.product(REDUCTIONS + ["batchmean"], [False, True], DTYPES))
)
def test_kl_div(reduction, log_target, dtype):
    target = np.log(Q) if log_target else Q
    compare(
        lambda x, t: F.kl_div(x, t, reduction=reduction, log_target=log_target),
        lambda x, t: TF.kl_div(x, t, reduction=reduction, log_target=log_target),
        [LOGP, target],
        dtype,
    )


def test_kl_div_zero_target_counts_nothing():
    x, t = Tensor(LOGP[:1]), Tensor(np.array([[0.0, 0.5, 0.5, 0.0, 0.0]]))
    theirs = TF.kl_div(torch.tensor(LOGP[:1]), torch.tensor(t.data), reduction="sum")
    check(F.kl_div(x, t, reduction="sum"), theirs, np.float64, "value with zero targets")


@pytest.mark.parametrize(
    "shapes, dim, dtype",
    [
        (((4, 5), (4, 5)), 1, np.float64),
        (((2, 3, 4), (3, 4)), -1, np.float32),
        (((3, 2), (3, 1)), 0, np.float64),
        (((4, 5), (4, 5)), 1, np.float32),
    ],
)
def test_cosine_similarity(shapes, dim, dtype):
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    compare(lambda a, b: F.cosine_similarity(a, b, dim), lambda a, b: TF.cosine_similarity(a, b, dim), [a, b], dtype)


def test_cosine_similarity_of_a_zero_vector_is_zero_with_torchs_gradient():
    a, b = np.zeros((2, 3)), rng.standard_normal((2, 3))
    compare(lambda a, b: F.cosine_similarity(a, b), lambda a, b: TF.cosine_similarity(a, b), [a, b], np.float64)


MODULES = [
    ("BCELoss", {}, [PROBS[1:], TARGETS[1:]]),
    ("BCELoss", {"weight": np.linspace(0.5, 1.5, 5), "reduction": "sum"}, [PROBS[1:], TARGETS[1:]]),
    ("L1Loss", {"reduction": "sum"}, [X, T]),
    ("SmoothL1Loss", {"beta": 0.7}, [X, T]),
    ("KLDivLoss", {"reduction": "batchmean"}, [LOGP, Q]),
    ("KLDivLoss", {"log_target": True}, [LOGP, np.log(Q)]),
    ("CosineSimilarity", {"dim": 0, "eps": 1e-6}, [X, T]),
    ("L1Loss", {"size_average": False}, [X, T]),  # legacy flags: sum
    ("SmoothL1Loss", {"reduce": False}, [X, T]),  # legacy flags: none
]


@pytest.mark.parametrize("name, options, inputs", MODULES, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(MODULES)])
def test_modules(name, options, inputs):
    def build(library, to_tensor):
        given = {k: to_tensor(v.astype(np.float32)) if isinstance(v, np.ndarray) else v for k, v in options.items()}
        return getattr(library, name)(**given)

    ours = build(nn, Tensor)
    with pytest.warns(UserWarning) if {"size_average", "reduce"} & set(options) else _no_warning():
        theirs = build(torch.nn, torch.tensor)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in theirs.state_dict().items()
    ]
    assert getattr(ours, "reduction", None) == getattr(theirs, "reduction", None)
    compare(ours, theirs, inputs, np.float32)


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_loss_errors_name_the_op():
    x = Tensor(np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="binary_cross_entropy: every element of input must be a probability"):
        F.binary_cross_entropy(Tensor(np.array([0.5, 1.5])), Tensor(np.array([0.0, 1.0])))
    with pytest.raises(ValueError, match=r"l1_loss: target of shape \(3,\) must have the same shape as input \(2, 3\)"):
        F.l1_loss(x, Tensor(np.zeros(3)))
    with pytest.raises(ValueError, match="kl_div: reduction must be one of 'none', 'mean', 'batchmean' or 'sum'"):
        F.kl_div(x, x, reduction="avg")
    with pytest.raises(ValueError, match="smooth_l1_loss: beta must be >= 0"):
        F.smooth_l1_loss(x, x, beta=-1.0)
    with pytest.raises(ValueError, match="cosine_similarity: x1 of shape"):
        F.cosine_similarity(x, Tensor(np.zeros((4, 3))))
