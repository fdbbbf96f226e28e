"""Parity with torch.nn.functional: batch norm (outputs, gradients, running statistics), the
losses (outputs and gradients, over a grid of weights, label smoothing, ignore_index and
reductions) and dropout's scaling convention; float64 to 1e-7, float32 to 1e-4 with dtypes.
"""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

from kinone import nn  # noqa: E402
from kinone.autograd import Tensor, manual_seed  # noqa: E402
from kinone.nn import functional as F  # noqa: E402

TOLERANCES = {np.float64: (1e-7, 1e-10), np.float32: (1e-4, 1e-5)}
TORCH_DTYPES = {np.float64: torch.float64, np.float32: torch.float32}
DTYPES = [np.float64, np.float32]


def seed(case) -> int:
    """A seed that depends on the case only (str hashes change from run to run)."""
    return zlib.crc32(repr(case).encode())


def check(ours, theirs, dtype, what, atol_scale=1.0):
    """Values within the dtype's tolerance, and the dtype itself, of a kinone and a torch result."""
    rtol, atol = TOLERANCES[dtype]
    ours = ours.data if isinstance(ours, Tensor) else ours
    theirs = theirs.detach().numpy()
    assert ours.dtype == theirs.dtype == dtype, f"{what}: dtypes {ours.dtype} and {theirs.dtype}, expected {dtype}"
    assert ours.shape == theirs.shape, f"{what}: shapes {ours.shape} and {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol * atol_scale, err_msg=what)


def pair(array, dtype, requires_grad=True):
    """The same values as a kinone leaf and a torch leaf of `dtype`."""
    array = np.asarray(array).astype(dtype)
    return Tensor(array.copy(), requires_grad=requires_grad), torch.tensor(array.copy(), requires_grad=requires_grad)


def constant(array, dtype=None):
    array = np.asarray(array) if dtype is None else np.asarray(array).astype(dtype)
    return Tensor(array.copy()), torch.tensor(array.copy())


# ---------------------------------------------------------------------------- batch norm
BN_SHAPES = [(8, 3), (4, 3, 7), (2, 3, 4, 5), (3, 2, 8, 9)]  # the last has rows of 72: the matmul dots
AFFINE = [(True, True), (True, False), (False, True), (False, False)]
BN_GRID = [
    (shape, training, affine, running, dtype)
    for shape, training, affine, running, dtype in itertools.product(
        BN_SHAPES, [True, False], AFFINE, [True, False], DTYPES
    )
    if running or training
]


@pytest.mark.parametrize(
    "shape, training, affine, running, dtype",
    BN_GRID,
    ids=[
        f"{s}-{'train' if t else 'eval'}-w{int(a[0])}b{int(a[1])}-{'stats' if r else 'nostats'}-{np.dtype(d).name}"
        for s, t, a, r, d in BN_GRID
    ],
)
def test_batch_norm(shape, training, affine, running, dtype):
    rng = np.random.default_rng(seed((shape, training, affine, running)))
    channels = shape[1]
    x_k, x_t = pair(rng.standard_normal(shape) * 2 + 0.5, dtype)
    w_k, w_t = pair(rng.uniform(0.5, 1.5, channels), dtype) if affine[0] else (None, None)
    b_k, b_t = pair(rng.standard_normal(channels), dtype) if affine[1] else (None, None)
    mean0, var0 = rng.standard_normal(channels), rng.uniform(0.5, 2, channels)
    rm_k, rm_t = constant(mean0, dtype) if running else (None, None)
    rv_k, rv_t = constant(var0, dtype) if running else (None, None)
    momentum, eps = (0.1, 1e-5) if running else (0.3, 1e-3)

    y_k = F.batch_norm(x_k, rm_k, rv_k, w_k, b_k, training=training, momentum=momentum, eps=eps)
    y_t = TF.batch_norm(x_t, rm_t, rv_t, w_t, b_t, training=training, momentum=momentum, eps=eps)
    check(y_k, y_t, dtype, "output")
    g = rng.standard_normal(shape).astype(dtype)
    y_k.backward(g)
    y_t.backward(torch.tensor(g))
    check(x_k.grad, x_t.grad, dtype, "dL/dx")
    if affine[0]:
        check(w_k.grad, w_t.grad, dtype, "dL/dweight", atol_scale=10)
    if affine[1]:
        check(b_k.grad, b_t.grad, dtype, "dL/dbias", atol_scale=10)
    if running:
        check(rm_k, rm_t, dtype, "running_mean")
        check(rv_k, rv_t, dtype, "running_var")


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_modules_over_several_steps(momentum):
    rng = np.random.default_rng(1)
    ours, theirs = (
        nn.BatchNorm2d(3, momentum=momentum).to(np.float64),
        torch.nn.BatchNorm2d(3, momentum=momentum).double(),
    )
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    for step in range(4):
        x = rng.standard_normal((4, 3, 5, 5)) * (step + 1) + step
        np.testing.assert_allclose(
            ours(Tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(), rtol=1e-7, atol=1e-10
        )
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), rtol=1e-7, err_msg=key)
    ours.eval(), theirs.eval()
    x = rng.standard_normal((2, 3, 5, 5))
    np.testing.assert_allclose(ours(Tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(), rtol=1e-7, atol=1e-10)


# ---------------------------------------------------------------------------- cross-entropy and nll
CE_SHAPES = [(6, 5), (3, 4, 2, 3), (5,)]


def class_targets(rng, shape, ignore_index):
    classes = shape[1] if len(shape) > 1 else shape[0]
    target_shape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    target = rng.integers(0, classes, target_shape)
    if ignore_index == -100 and target.ndim:
        target.flat[::4] = -100  # some ignored entries
    elif ignore_index != -100 and target.ndim:
        target.flat[1::3] = ignore_index  # a real class index, ignored
    return target, classes


CE_GRID = list(itertools.product(CE_SHAPES, [False, True], [0.0, 0.15], ["none", "mean", "sum"], [-100, 2], DTYPES))


@pytest.mark.parametrize(
    "shape, weighted, smoothing, reduction, ignore_index, dtype",
    CE_GRID,
    ids=[f"{s}-w{int(w)}-ls{ls}-{r}-ign{i}-{np.dtype(d).name}" for s, w, ls, r, i, d in CE_GRID],
)
def test_cross_entropy(shape, weighted, smoothing, reduction, ignore_index, dtype):
    rng = np.random.default_rng(seed((shape, weighted, smoothing, reduction, ignore_index)))
    target, classes = class_targets(rng, shape, ignore_index)
    x_k, x_t = pair(rng.standard_normal(shape) * 3, dtype)
    w_k, w_t = constant(rng.uniform(0.3, 2, classes), dtype) if weighted else (None, None)
    options = dict(ignore_index=ignore_index, reduction=reduction, label_smoothing=smoothing)
    y_k = F.cross_entropy(x_k, Tensor(target), weight=w_k, **options)
    y_t = TF.cross_entropy(x_t, torch.tensor(target), weight=w_t, **options)
    check(y_k, y_t, dtype, "loss")
    g = rng.standard_normal(y_t.shape).astype(dtype)
    y_k.backward(g)
    y_t.backward(torch.tensor(g))
    check(x_k.grad, x_t.grad, dtype, "dL/dinput")


NLL_GRID = list(itertools.product(CE_SHAPES, [False, True], ["none", "mean", "sum"], [-100, 2], DTYPES))


@pytest.mark.parametrize(
    "shape, weighted, reduction, ignore_index, dtype",
    NLL_GRID,
    ids=[f"{s}-w{int(w)}-{r}-ign{i}-{np.dtype(d).name}" for s, w, r, i, d in NLL_GRID],
)
def test_nll_loss(shape, weighted, reduction, ignore_index, dtype):
    rng = np.random.default_rng(seed((shape, weighted, reduction, ignore_index)))
    target, classes = class_targets(rng, shape, ignore_index)
    x_k, x_t = pair(rng.standard_normal(shape), dtype)
    w_k, w_t = constant(rng.uniform(0.3, 2, classes), dtype) if weighted else (None, None)
    y_k = F.nll_loss(x_k, Tensor(target), weight=w_k, ignore_index=ignore_index, reduction=reduction)
    y_t = TF.nll_loss(x_t, torch.tensor(target), weight=w_t, ignore_index=ignore_index, reduction=reduction)
    check(y_k, y_t, dtype, "loss")
    g = rng.standard_normal(y_t.shape).astype(dtype)
    y_k.backward(g)
    y_t.backward(torch.tensor(g))
    check(x_k.grad, x_t.grad, dtype, "dL/dinput")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_large_and_far_apart_logits(dtype, smoothing):
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((4, 6)) * 1e4  # |logits| ~ 1e4
    logits[1] += 3e4  # rows whose maxima are far apart
    target = np.array([0, 5, 2, 3])
    x_k, x_t = pair(logits, dtype)
    y_k = F.cross_entropy(x_k, Tensor(target), label_smoothing=smoothing, reduction="sum")
    y_t = TF.cross_entropy(x_t, torch.tensor(target), label_smoothing=smoothing, reduction="sum")
    check(y_k, y_t, dtype, "loss")
    y_k.backward()
    y_t.backward()
    assert np.all(np.isfinite(x_k.grad.data))
    check(x_k.grad, x_t.grad, dtype, "dL/dinput")


@pytest.mark.parametrize("loss, smoothing", [("cross_entropy", 0.0), ("cross_entropy", 0.2), ("nll_loss", 0.0)])
def test_degenerate_means_match_torch(loss, smoothing):
    """All targets ignored: nan loss, zero gradient. Counted targets of total weight 0: nan
    (with label smoothing too, where the smoothing term alone would give inf)."""
    options = {"label_smoothing": smoothing} if smoothing else {}
    for target, weight in [([-100, -100, -100], None), ([0, 0, 0], [0.0, 1.0, 1.0, 1.0])]:
        x_k, x_t = pair(np.random.default_rng(0).standard_normal((3, 4)), np.float64)
        w_k, w_t = constant(weight, np.float64) if weight else (None, None)
        y_k = getattr(F, loss)(x_k, Tensor(np.array(target)), weight=w_k, **options)
        y_t = getattr(TF, loss)(x_t, torch.tensor(target), weight=w_t, **options)
        y_k.backward()
        y_t.backward()
        assert np.isnan(y_k.item()) and np.isnan(y_t.item())
        np.testing.assert_array_equal(np.isnan(x_k.grad.data), np.isnan(x_t.grad.numpy()))
        np.testing.assert_allclose(np.nan_to_num(x_k.grad.data), np.nan_to_num(x_t.grad.numpy()), rtol=1e-7)


# ---------------------------------------------------------------------------- binary cross-entropy
BCE_CASES = [
    ((6, 4), [None, "full", "class", "row"], ["none", "class"]),
    ((2, 3, 4), [None, "class", "row"], ["none", "class"]),
    ((5,), [None, "full"], ["none", "class"]),
]
BCE_GRID = [
    (shape, w, pw, reduction, dtype)
    for shape, weights, pos_weights in BCE_CASES
    for w, pw, reduction, dtype in itertools.product(weights, pos_weights, ["none", "mean", "sum"], DTYPES)
]


def weight_shape(kind, shape):
    return {"full": shape, "class": shape[-1:], "row": shape[:-1] + (1,)}[kind]


@pytest.mark.parametrize(
    "shape, weight, pos_weight, reduction, dtype",
    BCE_GRID,
    ids=[f"{s}-w{w}-pw{p}-{r}-{np.dtype(d).name}" for s, w, p, r, d in BCE_GRID],
)
def test_binary_cross_entropy_with_logits(shape, weight, pos_weight, reduction, dtype):
    rng = np.random.default_rng(seed((shape, weight, pos_weight, reduction)))
    x_k, x_t = pair(rng.standard_normal(shape) * 3, dtype)
    t_k, t_t = pair(rng.random(shape), dtype)
    w_k, w_t = constant(rng.uniform(0.3, 2, weight_shape(weight, shape)), dtype) if weight else (None, None)
    pw_k, pw_t = constant(rng.uniform(0.3, 3, shape[-1:]), dtype) if pos_weight != "none" else (None, None)
    y_k = F.binary_cross_entropy_with_logits(x_k, t_k, weight=w_k, pos_weight=pw_k, reduction=reduction)
    y_t = TF.binary_cross_entropy_with_logits(x_t, t_t, weight=w_t, pos_weight=pw_t, reduction=reduction)
    check(y_k, y_t, dtype, "loss")
    g = rng.standard_normal(y_t.shape).astype(dtype)
    y_k.backward(g)
    y_t.backward(torch.tensor(g))
    check(x_k.grad, x_t.grad, dtype, "dL/dinput")
    check(t_k.grad, t_t.grad, dtype, "dL/dtarget")


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy_with_logits_at_1e4(dtype):
    logits = np.array([[1e4, -1e4, 3e3], [-1e4, 1e4, -50.0]])
    target = np.array([[1.0, 1.0, 0.0], [0.0, 0.3, 1.0]])
    x_k, x_t = pair(logits, dtype)
    t_k, t_t = pair(target, dtype)
    pw_k, pw_t = constant([2.0, 0.5, 3.0], dtype)
    y_k = F.binary_cross_entropy_with_logits(x_k, t_k, pos_weight=pw_k, reduction="sum")
    y_t = TF.binary_cross_entropy_with_logits(x_t, t_t, pos_weight=pw_t, reduction="sum")
    check(y_k, y_t, dtype, "loss")
    y_k.backward()
    y_t.backward()
    assert np.all(np.isfinite(x_k.grad.data)) and np.all(np.isfinite(t_k.grad.data))
    check(x_k.grad, x_t.grad, dtype, "dL/dinput")
    check(t_k.grad, t_t.grad, dtype, "dL/dtarget")


# ---------------------------------------------------------------------------- mse
MSE_GRID = list(itertools.product([(4, 3), (2, 3, 4), (5,), ()], ["none", "mean", "sum"], DTYPES))


@pytest.mark.parametrize(
    "shape, reduction, dtype", MSE_GRID, ids=[f"{s}-{r}-{np.dtype(d).name}" for s, r, d in MSE_GRID]
)
def test_mse_loss(shape, reduction, dtype):
    rng = np.random.default_rng(seed((shape, reduction)))
    x_k, x_t = pair(rng.standard_normal(shape), dtype)
    t_k, t_t = pair(rng.standard_normal(shape), dtype)
    y_k, y_t = F.mse_loss(x_k, t_k, reduction=reduction), TF.mse_loss(x_t, t_t, reduction=reduction)
    check(y_k, y_t, dtype, "loss")
    g = rng.standard_normal(y_t.shape).astype(dtype)
    y_k.backward(g)
    y_t.backward(torch.tensor(g))
    check(x_k.grad, x_t.grad, dtype, "dL/dinput")
    check(t_k.grad, t_t.grad, dtype, "dL/dtarget")


# ---------------------------------------------------------------------------- dropout
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.7])
def test_dropout_scales_survivors_exactly_as_torch(dtype, p):
    """The random masks differ (different generators); the convention does not: survivors are
    x · (1 / (1 - p)) computed in x's dtype, bit for bit, and dropped entries are 0."""
    x = np.random.default_rng(0).standard_normal((50, 60)).astype(dtype)
    manual_seed(1)
    ours = F.dropout(Tensor(x), p).data
    torch.manual_seed(1)
    theirs = TF.dropout(torch.tensor(x), p).numpy()
    assert ours.dtype == theirs.dtype == dtype
    kept_ours, kept_theirs = ours != 0, theirs != 0
    np.testing.assert_array_equal(ours[kept_ours], (x * dtype(1 / (1 - p)))[kept_ours])
    np.testing.assert_array_equal(theirs[kept_theirs], (x * dtype(1 / (1 - p)))[kept_theirs])


@pytest.mark.parametrize("p, training", [(0.0, True), (0.4, False), (1.0, True)])
def test_dropout_identity_and_all_dropped_match_torch(p, training):
    x_k, x_t = pair(np.random.default_rng(0).standard_normal((3, 4)), np.float64)
    y_k, y_t = F.dropout(x_k, p, training), TF.dropout(x_t, p, training)
    np.testing.assert_array_equal(y_k.data, y_t.detach().numpy())
    if y_k.requires_grad:
        y_k.sum().backward()
        y_t.sum().backward()
        np.testing.assert_array_equal(x_k.grad.data, x_t.grad.numpy())
