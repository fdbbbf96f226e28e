"""Batch norm, dropout and the losses without PyTorch: values against NumPy formulas, running
statistics, dropout's statistics, stability at |logits| = 1e4, dtypes, and the errors."""

from __future__ import annotations

import numpy as np
import pytest

from kinone import nn
from kinone.autograd import Tensor, manual_seed, no_grad, trace
from kinone.nn import functional as F
from kinone.nn.functional import loss as loss_module
from kinone.nn.functional import normalization
from kinone.nn.functional.dropout import Dropout
from kinone.nn.functional.loss import BCEWithLogits, CrossEntropy
from kinone.nn.functional.normalization import BatchNormEval, BatchNormTraining

rng = np.random.default_rng(2024)


def leaf(a, dtype=np.float64):
    return Tensor(np.array(a, dtype=dtype), requires_grad=True)


# ---------------------------------------------------------------------------- batch norm
def reference_batch_norm(x, weight, bias, eps):
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * weight.reshape(shape) + bias.reshape(shape)
    return y, mean, x.var(axis=axes, ddof=1)


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 7), (2, 3, 4, 5)])
def test_batch_norm_training_normalises_and_updates_running_stats_in_place(shape):
    x = rng.standard_normal(shape) * 3 + 2
    weight, bias = rng.uniform(0.5, 2, shape[1]), rng.standard_normal(shape[1])
    running_mean, running_var = Tensor(rng.standard_normal(shape[1])), Tensor(rng.uniform(0.5, 2, shape[1]))
    before_mean, before_var = running_mean.data.copy(), running_var.data.copy()
    mean_array, var_array = running_mean.data, running_var.data
    y = F.batch_norm(
        Tensor(x), running_mean, running_var, Tensor(weight), Tensor(bias), training=True, momentum=0.2, eps=1e-3
    )
    expected, batch_mean, unbiased_var = reference_batch_norm(x, weight, bias, 1e-3)
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-12)
    assert running_mean.data is mean_array and running_var.data is var_array  # updated in place
    np.testing.assert_allclose(running_mean.data, 0.8 * before_mean + 0.2 * batch_mean, rtol=1e-12)
    np.testing.assert_allclose(running_var.data, 0.8 * before_var + 0.2 * unbiased_var, rtol=1e-12)


def test_batch_norm_eval_uses_running_stats_and_changes_nothing():
    x = rng.standard_normal((5, 3, 4))
    mean, var = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    weight, bias = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    running_mean, running_var = Tensor(mean.copy()), Tensor(var.copy())
    y = F.batch_norm(Tensor(x), running_mean, running_var, Tensor(weight), Tensor(bias), training=False, eps=1e-4)
    s = (slice(None), None)  # (C, 1): broadcasts over (N, C, L)
    expected = (x - mean[s]) / np.sqrt(var[s] + 1e-4) * weight[s] + bias[s]
    np.testing.assert_allclose(y.data, expected, rtol=1e-12)
    assert np.array_equal(running_mean.data, mean) and np.array_equal(running_var.data, var)


def test_batch_norm_training_without_running_stats_and_without_affine():
    x = rng.standard_normal((6, 2, 3))
    y = F.batch_norm(Tensor(x), None, None, training=True)
    expected, _, _ = reference_batch_norm(x, np.ones(2), np.zeros(2), 1e-5)
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-14)


def test_batch_norm_gradients_of_the_fused_formula():
    # With g = 1 everywhere, dL/dx = 0 (the output's per-channel sum is constant) and dL/db = N·L.
    x, weight, bias = leaf(rng.standard_normal((4, 3, 5))), leaf(rng.uniform(0.5, 2, 3)), leaf(np.zeros(3))
    F.batch_norm(x, None, None, weight, bias, training=True).sum().backward()
    np.testing.assert_allclose(x.grad.data, 0, atol=1e-12)
    np.testing.assert_allclose(bias.grad.data, 20)
    np.testing.assert_allclose(weight.grad.data, 0, atol=1e-12)  # Σ x̂ = 0


def test_batch_norm_is_one_function_per_call():
    x, w, b = leaf(rng.standard_normal((4, 3))), leaf(np.ones(3)), leaf(np.zeros(3))
    with trace() as records:
        F.batch_norm(x, Tensor(np.zeros(3)), Tensor(np.ones(3)), w, b, training=True)
        F.batch_norm(x, Tensor(np.zeros(3)), Tensor(np.ones(3)), w, b, training=False)
    assert [r.function for r in records] == [BatchNormTraining, BatchNormEval]
    assert records[0].attrs["inputs"] == ("running_mean", "running_var", "weight", "bias")
    assert records[1].attrs["inputs"] == ("weight", "bias")


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_float32_stays_float32(training):
    x = leaf(rng.standard_normal((4, 3, 2, 2)), np.float32)
    w, b = leaf(np.ones(3), np.float32), leaf(np.zeros(3), np.float32)
    rm, rv = Tensor(np.zeros(3, np.float32)), Tensor(np.ones(3, np.float32))
    y = F.batch_norm(x, rm, rv, w, b, training=training)
    y.backward(np.ones(y.shape, np.float32))
    assert y.dtype == x.grad.dtype == w.grad.dtype == b.grad.dtype == rm.dtype == rv.dtype == np.float32


def test_batch_norm_under_no_grad_records_nothing():
    x = leaf(rng.standard_normal((4, 3)))
    with no_grad():
        y = F.batch_norm(x, Tensor(np.zeros(3)), Tensor(np.ones(3)), training=True)
    assert not y.requires_grad and y.grad_fn is None


def test_batch_norm_layout_choices_agree(monkeypatch):
    # Per-channel vectors as (C, L) blocks or broadcast columns; dots by matmul or einsum.
    x = rng.standard_normal((3, 4, 8, 9)) * 2 + 1
    g = rng.standard_normal(x.shape)

    def run():
        xt, w, b = leaf(x), leaf(np.linspace(0.5, 2, 4)), leaf(np.linspace(-1, 1, 4))
        y = F.batch_norm(xt, Tensor(np.zeros(4)), Tensor(np.ones(4)), w, b, training=True)
        y.backward(g)
        return y.data, xt.grad.data, w.grad.data, b.grad.data

    reference = run()
    for block, row in [(0, 64), (1 << 30, 10**9), (0, 1)]:
        monkeypatch.setattr(normalization, "_BLOCK_ELEMENTS", block)
        monkeypatch.setattr(normalization, "_MATMUL_MIN_ROW", row)
        for got, want in zip(run(), reference):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_batch_norm_module_counts_batches_and_cumulative_average():
    bn = nn.BatchNorm1d(2, momentum=None).to(np.float64)
    batches = [rng.standard_normal((5, 2)) * (k + 1) for k in range(3)]
    for batch in batches:
        bn(Tensor(batch))
    assert int(bn.num_batches_tracked.data) == 3
    # momentum=None: the running stats are the plain averages of the batch statistics.
    np.testing.assert_allclose(bn.running_mean.data, np.mean([b.mean(0) for b in batches], axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.data, np.mean([b.var(0, ddof=1) for b in batches], axis=0), rtol=1e-12)
    bn.eval()
    x = rng.standard_normal((4, 2))
    expected = (x - bn.running_mean.data) / np.sqrt(bn.running_var.data + bn.eps)
    np.testing.assert_allclose(bn(Tensor(x)).data, expected, rtol=1e-12)


def test_batch_norm_errors():
    x = Tensor(rng.standard_normal((4, 3, 2)))
    stats = Tensor(np.zeros(3)), Tensor(np.ones(3))
    with pytest.raises(ValueError, match=r"batch_norm: expected an input of shape \(N, C\).*got shape \(4,\)"):
        F.batch_norm(Tensor(np.zeros(4)), *stats, training=True)
    with pytest.raises(
        ValueError,
        match=r"batch_norm: weight of shape \(2,\) does not match the input of shape "
        r"\(4, 3, 2\): expected \(3,\)",
    ):
        F.batch_norm(x, *stats, Tensor(np.ones(2)), training=True)
    with pytest.raises(ValueError, match=r"running_mean of shape \(4,\)"):
        F.batch_norm(x, Tensor(np.zeros(4)), stats[1])
    with pytest.raises(ValueError, match="more than 1 value per channel when training, got input of shape \\(1, 3\\)"):
        F.batch_norm(Tensor(np.zeros((1, 3))), *stats, training=True)
    with pytest.raises(ValueError, match="running_mean and running_var are required when training=False"):
        F.batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match="both running_mean and running_var, or neither"):
        F.batch_norm(x, stats[0], None, training=True)
    with pytest.raises(ValueError, match="running_var is not differentiable"):
        F.batch_norm(x, stats[0], leaf(np.ones(3)), training=False)
    with pytest.raises(TypeError, match="batch_norm: expected a floating-point input, got dtype int64"):
        F.batch_norm(Tensor(np.zeros((2, 3), dtype=np.int64)), *stats, training=True)
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected an input of 4 dims, got shape \(4, 3, 2\)"):
        nn.BatchNorm2d(3)(x)


# ---------------------------------------------------------------------------- dropout
def test_dropout_is_the_identity_when_not_training_or_p_is_zero():
    x = leaf(rng.standard_normal((3, 4)))
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0, training=True) is x
    layer = nn.Dropout(0.3).eval()
    assert layer(x) is x


def test_dropout_statistics_and_scaling():
    manual_seed(0)
    p = 0.3
    x = Tensor(np.ones((400, 500), dtype=np.float32))
    y = F.dropout(x, p).data
    kept = y != 0
    assert y.dtype == np.float32
    assert abs(1 - kept.mean() - p) < 0.005  # 200,000 Bernoulli draws: the standard error is 0.001
    np.testing.assert_array_equal(y[kept], np.float32(1 / (1 - p)))  # survivors scaled by 1/(1-p)
    assert abs(y.mean() - 1) < 0.01  # so that the expectation is unchanged


def test_dropout_gradient_is_the_same_mask_and_seeds_repeat():
    x = leaf(rng.standard_normal((50, 40)))
    manual_seed(7)
    y = F.dropout(x, 0.6)
    y.backward(np.ones(y.shape))
    mask = y.data / x.data
    np.testing.assert_allclose(x.grad.data, mask, rtol=1e-12)
    assert set(np.round(np.unique(mask), 12)) <= {0.0, round(1 / 0.4, 12)}
    manual_seed(7)
    np.testing.assert_array_equal(F.dropout(x, 0.6).data, y.data)  # same seed, same mask
    assert not np.array_equal(F.dropout(x, 0.6).data, y.data)  # the generator moved on


def test_dropout_p_one_gives_zeros_and_zero_gradients():
    x = leaf(rng.standard_normal((3, 4)))
    y = F.dropout(x, 1.0)
    assert np.all(y.data == 0) and y.requires_grad
    y.sum().backward()
    assert np.all(x.grad.data == 0)


def test_dropout_is_one_function():
    with trace() as records:
        F.dropout(leaf(np.ones(3)), 0.5)
    assert [r.function for r in records] == [Dropout] and records[0].attrs == {"p": 0.5}


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), True])
def test_dropout_rejects_p_outside_0_1(p):
    with pytest.raises(ValueError, match=r"dropout: p .* must be in \[0, 1\], got"):
        F.dropout(Tensor(np.ones(3)), p)
    if not isinstance(p, bool):
        with pytest.raises(ValueError, match="Dropout: p must be in"):
            nn.Dropout(p)


def test_dropout_rejects_integer_input():
    with pytest.raises(TypeError, match="dropout: expected a floating-point input, got dtype int64"):
        F.dropout(Tensor(np.ones(3, dtype=np.int64)), 0.5)


# ---------------------------------------------------------------------------- cross-entropy and nll
def log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def test_cross_entropy_matches_the_formula_with_weights_smoothing_and_ignore_index():
    x = rng.standard_normal((6, 4))
    t = np.array([0, 3, -100, 2, 1, 3])
    w = np.array([0.5, 1.0, 2.0, 1.5])
    eps = 0.2
    counted = t != -100
    logp = log_softmax(x, 1)
    safe = np.where(counted, t, 0)
    nll = -w[safe] * logp[np.arange(6), safe] * counted
    smooth = -(logp * w).sum(1) * counted
    per_sample = (1 - eps) * nll + eps / 4 * smooth
    got = F.cross_entropy(Tensor(x), Tensor(t), weight=Tensor(w), label_smoothing=eps, reduction="none")
    np.testing.assert_allclose(got.data, per_sample, rtol=1e-12)
    # mean divides by the weights of the counted targets, not by their number
    got = F.cross_entropy(Tensor(x), Tensor(t), weight=Tensor(w), label_smoothing=eps)
    np.testing.assert_allclose(got.data, per_sample.sum() / w[t[counted]].sum(), rtol=1e-12)
    got = F.cross_entropy(Tensor(x), Tensor(t), weight=Tensor(w), label_smoothing=eps, reduction="sum")
    np.testing.assert_allclose(got.data, per_sample.sum(), rtol=1e-12)


def test_cross_entropy_gradient_is_softmax_minus_smoothed_one_hot():
    x, t, eps = leaf(rng.standard_normal((5, 3))), np.array([0, 2, 1, 1, 0]), 0.3
    F.cross_entropy(x, Tensor(t), label_smoothing=eps).backward()
    p = np.exp(log_softmax(x.data, 1))
    smoothed = (1 - eps) * np.eye(3)[t] + eps / 3
    np.testing.assert_allclose(x.grad.data, (p - smoothed) / 5, rtol=1e-12, atol=1e-15)


def test_cross_entropy_is_one_fused_function():
    with trace() as records:
        F.cross_entropy(leaf(rng.standard_normal((3, 4))), Tensor(np.array([0, 1, 2])), label_smoothing=0.1)
    assert [r.function for r in records] == [CrossEntropy]


def test_cross_entropy_spatial_and_unbatched_inputs_match_the_2d_form():
    x, t = rng.standard_normal((2, 3, 4, 5)), rng.integers(0, 3, (2, 4, 5))
    flat_x, flat_t = np.moveaxis(x, 1, -1).reshape(-1, 3), t.reshape(-1)
    spatial = F.cross_entropy(Tensor(x), Tensor(t), reduction="none", label_smoothing=0.1)
    flat = F.cross_entropy(Tensor(flat_x), Tensor(flat_t), reduction="none", label_smoothing=0.1)
    np.testing.assert_allclose(spatial.data.reshape(-1), flat.data, rtol=1e-12)
    single = F.cross_entropy(Tensor(flat_x[0]), Tensor(np.array(flat_t[0])), reduction="none")
    assert single.shape == () and np.isclose(single.item(), -log_softmax(flat_x[0], 0)[flat_t[0]])


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_is_stable_at_logits_of_1e4(smoothing):
    x = leaf(np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3], [0.0, 0.0, 0.0]], dtype=np.float32), np.float32)
    t = np.array([0, 0, 2])
    loss = F.cross_entropy(x, Tensor(t), reduction="none", label_smoothing=smoothing)
    loss.sum().backward()
    assert np.all(np.isfinite(loss.data)) and np.all(np.isfinite(x.grad.data))
    if not smoothing:
        np.testing.assert_allclose(loss.data, [0.0, 2e4, np.log(3)], rtol=1e-6)
        np.testing.assert_allclose(x.grad.data[1], [-1, 1, 0], atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("path", ["none", "scalar", "per-row"])
def test_cross_entropy_is_invariant_to_row_shifts_on_every_shift_path(dtype, path):
    # Logits need no shift, one scalar shift (rows close together, far from 0), or one shift
    # per row (row maxima far apart: one scalar would underflow the lower rows).
    h = -0.5 * np.log(np.finfo(dtype).tiny)
    offsets = {"none": [0.0, 0.0, 0.0], "scalar": [2 * h, 2 * h + 1, 2 * h - 1], "per-row": [0.0, 1.5 * h, -1.5 * h]}[
        path
    ]
    x = rng.standard_normal((3, 5))
    moved = (x + np.array(offsets)[:, None]).astype(dtype)
    shift = loss_module._softmax_shift(moved, 1)
    assert {"none": shift is None, "scalar": np.ndim(shift) == 0, "per-row": np.shape(shift) == (3, 1)}[path]
    target = Tensor(np.array([1, 2, 3]))
    a, b = leaf(x, dtype), leaf(moved, dtype)
    loss_a = F.cross_entropy(a, target, reduction="none", label_smoothing=0.1)
    loss_b = F.cross_entropy(b, target, reduction="none", label_smoothing=0.1)
    loss_a.sum().backward()
    loss_b.sum().backward()
    # float32 logits of ~100 carry an absolute rounding of ~1e-5 into every log-probability
    tolerance = 1e-9 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(loss_b.data, loss_a.data, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(b.grad.data, a.grad.data, rtol=tolerance, atol=tolerance)


def test_all_targets_ignored_gives_nan_mean_and_zero_gradient():
    for smoothing in (0.0, 0.2):
        x = leaf(rng.standard_normal((3, 4)))
        loss = F.cross_entropy(x, Tensor(np.array([-100, -100, -100])), label_smoothing=smoothing)
        loss.backward()
        assert np.isnan(loss.item()) and np.all(x.grad.data == 0)  # as PyTorch, and no RuntimeWarning
    x = leaf(rng.standard_normal((3, 4)))
    loss = F.nll_loss(x, Tensor(np.array([-100, -100, -100])))
    loss.backward()
    assert np.isnan(loss.item()) and np.all(x.grad.data == 0)


def test_nll_loss_picks_the_target_entries():
    x, t = leaf(rng.standard_normal((4, 3))), np.array([2, 0, 1, 2])
    w = np.array([1.0, 2.0, 3.0])
    loss = F.nll_loss(x, Tensor(t), weight=Tensor(w))
    picked = x.data[np.arange(4), t]
    np.testing.assert_allclose(loss.data, -(w[t] * picked).sum() / w[t].sum(), rtol=1e-12)
    loss.backward()
    expected = np.zeros((4, 3))
    expected[np.arange(4), t] = -w[t] / w[t].sum()
    np.testing.assert_allclose(x.grad.data, expected, rtol=1e-12)


@pytest.mark.parametrize("loss", [F.cross_entropy, F.nll_loss])
def test_class_index_loss_errors(loss):
    name = loss.__name__
    x = Tensor(rng.standard_normal((4, 3)))
    with pytest.raises(
        ValueError,
        match=rf"{name}: target of shape \(3,\) does not match input of shape \(4, 3\): "
        r"expected target shape \(4,\)",
    ):
        loss(x, Tensor(np.array([0, 1, 2])))
    with pytest.raises(IndexError, match=rf"{name}: target value 3 is out of range for 3 classes"):
        loss(x, Tensor(np.array([0, 1, 3, 2])))
    with pytest.raises(IndexError, match=rf"{name}: target value -1 is out of range"):
        loss(x, Tensor(np.array([0, -1, 1, 2])))
    with pytest.raises(TypeError, match=rf"{name}: target must hold integer class indices .* got dtype float32"):
        loss(x, Tensor(np.array([0.0, 1.0, 1.0, 2.0], dtype=np.float32)))
    with pytest.raises(ValueError, match=rf"{name}: reduction must be one of 'none', 'mean' or 'sum', got 'avg'"):
        loss(x, Tensor(np.array([0, 1, 1, 2])), reduction="avg")
    with pytest.raises(ValueError, match=rf"{name}: weight of shape \(2,\) must have one entry per class"):
        loss(x, Tensor(np.array([0, 1, 1, 2])), weight=Tensor(np.ones(2)))
    with pytest.raises(ValueError, match=rf"{name}: weight is not differentiable"):
        loss(x, Tensor(np.array([0, 1, 1, 2])), weight=leaf(np.ones(3)))
    with pytest.raises(ValueError, match=rf"{name}: target of shape \(2,\) .* expected target shape \(\)"):
        loss(Tensor(np.zeros(3)), Tensor(np.array([0, 1])))
    # ignore_index is not a class and is not range-checked
    assert np.isfinite(loss(x, Tensor(np.array([0, -100, 1, 2]))).item())


def test_cross_entropy_rejects_soft_targets_and_bad_smoothing():
    x = Tensor(rng.standard_normal((2, 3)))
    with pytest.raises(TypeError, match="class-probability \\(soft\\) targets are not supported"):
        F.cross_entropy(x, Tensor(np.full((2, 3), 1 / 3)))
    with pytest.raises(ValueError, match="cross_entropy: label_smoothing must be in \\[0, 1\\], got 1.5"):
        F.cross_entropy(x, Tensor(np.array([0, 1])), label_smoothing=1.5)


def test_cross_entropy_float32_stays_float32():
    x = leaf(rng.standard_normal((4, 5)), np.float32)
    loss = F.cross_entropy(x, Tensor(np.array([0, 1, 2, 3])), weight=Tensor(np.ones(5)), label_smoothing=0.1)
    loss.backward()
    assert loss.dtype == x.grad.dtype == np.float32


# ---------------------------------------------------------------------------- binary cross-entropy, mse
def test_bce_with_logits_matches_the_formula_with_weights():
    x, t = rng.standard_normal((4, 3)) * 3, rng.random((4, 3))
    w, pw = rng.uniform(0.5, 2, (4, 1)), rng.uniform(0.5, 3, 3)
    sig = 1 / (1 + np.exp(-x))
    expected = -w * (pw * t * np.log(sig) + (1 - t) * np.log(1 - sig))
    got = F.binary_cross_entropy_with_logits(
        Tensor(x), Tensor(t), weight=Tensor(w), pos_weight=Tensor(pw), reduction="none"
    )
    np.testing.assert_allclose(got.data, expected, rtol=1e-10)
    got = F.binary_cross_entropy_with_logits(Tensor(x), Tensor(t), weight=Tensor(w), pos_weight=Tensor(pw))
    np.testing.assert_allclose(got.data, expected.mean(), rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_is_stable_at_logits_of_1e4(dtype):
    x = leaf([1e4, -1e4, 1e4, -1e4, 0.0], dtype)
    t = leaf([1.0, 1.0, 0.0, 0.0, 0.5], dtype)
    loss = F.binary_cross_entropy_with_logits(x, t, pos_weight=Tensor(np.array([2.0], dtype=dtype)), reduction="none")
    loss.sum().backward()
    assert loss.dtype == x.grad.dtype == t.grad.dtype == dtype
    # -log σ(1e4) = 0; -log σ(-1e4) = 1e4 (times pos_weight 2); -log(1 - σ(1e4)) = 1e4
    np.testing.assert_allclose(loss.data, [0.0, 2e4, 1e4, 0.0, 1.5 * np.log(2)], rtol=1e-6)
    assert np.all(np.isfinite(x.grad.data)) and np.all(np.isfinite(t.grad.data))
    np.testing.assert_allclose(x.grad.data, [0, -2, 1, 0, 0.5 - 0.75], atol=1e-6)


def test_bce_with_logits_gradient_for_the_target():
    x, t = leaf(rng.standard_normal(5)), leaf(rng.random(5))
    F.binary_cross_entropy_with_logits(x, t, reduction="sum").backward()
    np.testing.assert_allclose(t.grad.data, -x.data, rtol=1e-12)  # d/dt [(1 - t) x + softplus(-x)] = -x


def test_bce_with_logits_is_one_function():
    with trace() as records:
        F.binary_cross_entropy_with_logits(
            leaf(np.zeros((2, 3))), Tensor(np.ones((2, 3))), weight=Tensor(np.ones(3)), pos_weight=Tensor(np.ones(3))
        )
    assert [r.function for r in records] == [BCEWithLogits]
    assert records[0].attrs["inputs"] == ("weight", "pos_weight")


def test_bce_with_logits_errors():
    op = "binary_cross_entropy_with_logits"
    x = Tensor(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=rf"{op}: target of shape \(4, 2\) must have the same shape as input \(4, 3\)"):
        F.binary_cross_entropy_with_logits(x, Tensor(np.zeros((4, 2))))
    with pytest.raises(
        ValueError,
        match=rf"{op}: pos_weight of shape \(4,\) does not broadcast to the input's shape "
        r"\(4, 3\) \(one entry per class of the last dim\)",
    ):
        F.binary_cross_entropy_with_logits(x, Tensor(np.zeros((4, 3))), pos_weight=Tensor(np.ones(4)))
    with pytest.raises(ValueError, match=rf"{op}: weight of shape \(2, 4, 3\) does not broadcast"):
        F.binary_cross_entropy_with_logits(x, Tensor(np.zeros((4, 3))), weight=Tensor(np.ones((2, 4, 3))))
    with pytest.raises(TypeError, match=rf"{op}: target must be floating-point"):
        F.binary_cross_entropy_with_logits(x, Tensor(np.zeros((4, 3), dtype=np.int64)))
    with pytest.raises(ValueError, match=rf"{op}: pos_weight is not differentiable"):
        F.binary_cross_entropy_with_logits(x, Tensor(np.zeros((4, 3))), pos_weight=leaf(np.ones(3)))
    with pytest.raises(ValueError, match=rf"{op}: reduction must be one of"):
        F.binary_cross_entropy_with_logits(x, Tensor(np.zeros((4, 3))), reduction="mean ")


def test_mse_loss_values_and_gradients_to_both():
    x, t = leaf(rng.standard_normal((3, 4))), leaf(rng.standard_normal((3, 4)))
    loss = F.mse_loss(x, t)
    np.testing.assert_allclose(loss.data, ((x.data - t.data) ** 2).mean(), rtol=1e-12)
    loss.backward()
    np.testing.assert_allclose(x.grad.data, 2 * (x.data - t.data) / 12, rtol=1e-12)
    np.testing.assert_allclose(t.grad.data, -x.grad.data, rtol=1e-12)
    assert F.mse_loss(x, t, reduction="none").shape == (3, 4)
    np.testing.assert_allclose(F.mse_loss(x, t, reduction="sum").data, 12 * loss.data, rtol=1e-12)


def test_mse_loss_errors():
    with pytest.raises(
        ValueError, match=r"mse_loss: target of shape \(3, 1\) must have the same shape as input \(3, 4\)"
    ):
        F.mse_loss(Tensor(np.zeros((3, 4))), Tensor(np.zeros((3, 1))))
    with pytest.raises(ValueError, match="mse_loss: reduction must be one of"):
        F.mse_loss(Tensor(np.zeros(3)), Tensor(np.zeros(3)), reduction="avg")
    with pytest.raises(TypeError, match="mse_loss: input must be floating-point, got dtype int64"):
        F.mse_loss(Tensor(np.zeros(3, dtype=np.int64)), Tensor(np.zeros(3)))


def test_loss_modules_pass_their_options_through():
    x, t = rng.standard_normal((5, 3)), rng.integers(0, 3, 5)
    w = np.array([1.0, 2.0, 0.5])
    module = nn.CrossEntropyLoss(weight=w, label_smoothing=0.1, reduction="sum", ignore_index=1)
    direct = F.cross_entropy(
        Tensor(x), Tensor(t), weight=Tensor(w), label_smoothing=0.1, reduction="sum", ignore_index=1
    )
    np.testing.assert_allclose(module(Tensor(x), Tensor(t)).data, direct.data, rtol=1e-12)
    logp = log_softmax(x, 1)
    np.testing.assert_allclose(nn.NLLLoss()(Tensor(logp), Tensor(t)).data, -logp[np.arange(5), t].mean(), rtol=1e-12)
    multi = (rng.random((5, 3)) > 0.5).astype(np.float64)
    bce = nn.BCEWithLogitsLoss(pos_weight=w)(Tensor(x), Tensor(multi))
    np.testing.assert_allclose(
        bce.data, F.binary_cross_entropy_with_logits(Tensor(x), Tensor(multi), pos_weight=Tensor(w)).data, rtol=1e-12
    )
