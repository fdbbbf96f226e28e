"""Parity with torch.optim.lr_scheduler for ExponentialLR, LambdaLR, ReduceLROnPlateau and
CosineAnnealingWarmRestarts (issue 16): the same lr sequences bit for bit, in `get_last_lr()`
and in the optimizer's `param_groups[i]["lr"]`, also after a state dict went through JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import kinone.optim as ko  # noqa: E402
from kinone.autograd import Tensor  # noqa: E402


def _sgd(optim, params):
    return optim.SGD([{"params": params[:2]}, {"params": params[2:], "lr": 0.02}], lr=0.1, momentum=0.9)


def _both(make_scheduler, make_optimizer=_sgd):
    """(optimizer, scheduler) for Kinone and for PyTorch, built the same way."""
    kinone_opt = make_optimizer(ko, [Tensor(np.zeros(2), requires_grad=True) for _ in range(4)])
    torch_opt = make_optimizer(torch.optim, [torch.zeros(2, requires_grad=True) for _ in range(4)])
    return (
        (kinone_opt, make_scheduler(ko.lr_scheduler, kinone_opt)),
        (torch_opt, make_scheduler(torch.optim.lr_scheduler, torch_opt)),
    )


def _assert_same_lrs(when, kinone, torch_pair):
    (kinone_opt, kinone_sched), (torch_opt, torch_sched) = kinone, torch_pair
    assert kinone_sched.get_last_lr() == torch_sched.get_last_lr(), when
    assert [g["lr"] for g in kinone_opt.param_groups] == [g["lr"] for g in torch_opt.param_groups], when


class WarmupThenDecay:
    """A callable object: LambdaLR saves and restores its attributes (PyTorch does too)."""

    def __init__(self, warmup):
        self.warmup = warmup

    def __call__(self, epoch):
        return (epoch + 1) / self.warmup if epoch < self.warmup else 0.9 ** (epoch - self.warmup)


SCHEDULES = {
    "ExponentialLR": lambda S, opt: S.ExponentialLR(opt, gamma=0.9),
    "LambdaLR": lambda S, opt: S.LambdaLR(opt, lambda epoch: 1 / (1 + 0.3 * epoch)),
    "LambdaLR-per-group": lambda S, opt: S.LambdaLR(opt, [lambda e: 0.95**e, lambda e: 1 + math.sin(e)]),
    "LambdaLR-callable-object": lambda S, opt: S.LambdaLR(opt, WarmupThenDecay(4)),
    "CosineAnnealingWarmRestarts": lambda S, opt: S.CosineAnnealingWarmRestarts(opt, T_0=4),
    "CosineAnnealingWarmRestarts-T_mult-eta_min": lambda S, opt: S.CosineAnnealingWarmRestarts(
        opt, T_0=3, T_mult=2, eta_min=0.001
    ),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_matches_torch(name):
    kinone, torch_pair = _both(SCHEDULES[name])
    _assert_same_lrs("after construction", kinone, torch_pair)
    for step in range(1, 31):
        for opt, sched in (kinone, torch_pair):
            opt.step()
            sched.step()
        _assert_same_lrs(f"after step {step}", kinone, torch_pair)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_resumed_schedule_matches_uninterrupted_torch_schedule(name):
    """Scheduler state through JSON at step 13 into a freshly built scheduler (with the same
    lambdas: as in PyTorch, plain functions are not saved)."""
    kinone, torch_pair = _both(SCHEDULES[name])
    for step in range(1, 31):
        if step == 13:
            optimizer_state = kinone[0].state_dict()
            scheduler_state = json.loads(json.dumps(kinone[1].state_dict()))
            kinone = _both(SCHEDULES[name])[0]
            kinone[0].load_state_dict(optimizer_state)
            kinone[1].load_state_dict(scheduler_state)
            _assert_same_lrs(f"resumed after step {step - 1}", kinone, torch_pair)
        for opt, sched in (kinone, torch_pair):
            opt.step()
            sched.step()
        _assert_same_lrs(f"after step {step}", kinone, torch_pair)


def test_lambdalr_saves_a_callable_objects_attributes_but_no_function():
    (_, kinone_sched), (_, torch_sched) = _both(lambda S, opt: S.LambdaLR(opt, [WarmupThenDecay(4), lambda e: 1.0]))
    ours, theirs = kinone_sched.state_dict(), torch_sched.state_dict()
    assert ours["lr_lambdas"] == theirs["lr_lambdas"] == [{"warmup": 4}, None]

    schedule = WarmupThenDecay(9)
    (_, fresh) = _both(lambda S, opt: S.LambdaLR(opt, [schedule, lambda e: 1.0]))[0]
    fresh.load_state_dict(json.loads(json.dumps(ours)))
    assert schedule.warmup == 4


# ---------------------------------------------------------------------------- CosineAnnealingWarmRestarts(epoch)
@pytest.mark.parametrize("T_mult", [1, 2, 3])
def test_warm_restarts_at_fractional_epochs_match_torch(T_mult):
    """`step(epoch + i / iters)` after each batch, as PyTorch's docs show, then plain steps."""
    kinone, torch_pair = _both(lambda S, opt: S.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=T_mult, eta_min=0.01))
    iters = 5
    for epoch in range(12):
        for i in range(iters):
            for opt, sched in (kinone, torch_pair):
                opt.step()
                sched.step(epoch + i / iters)
            _assert_same_lrs(f"at epoch {epoch + i / iters}", kinone, torch_pair)
            assert kinone[1].T_cur == torch_pair[1].T_cur and kinone[1].T_i == torch_pair[1].T_i
    for step in range(5):  # interleaved: a plain step continues from the last epoch given
        for _, sched in (kinone, torch_pair):
            sched.step()
        _assert_same_lrs(f"plain step {step}", kinone, torch_pair)
    for _, sched in (kinone, torch_pair):
        sched.step(26)
    _assert_same_lrs("step(26)", kinone, torch_pair)
    assert kinone[1].last_epoch == torch_pair[1].last_epoch == 26


def test_warm_restarts_refuse_what_torch_refuses():
    opt = ko.SGD([Tensor(np.zeros(2), requires_grad=True)], lr=0.1)
    S = ko.lr_scheduler
    with pytest.raises(ValueError, match="CosineAnnealingWarmRestarts: T_0 must be a positive integer, got 0"):
        S.CosineAnnealingWarmRestarts(opt, T_0=0)
    with pytest.raises(ValueError, match="CosineAnnealingWarmRestarts: T_mult must be an integer >= 1, got 1.5"):
        S.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=1.5)
    with pytest.raises(ValueError, match="CosineAnnealingWarmRestarts: epoch must be non-negative, got -1"):
        S.CosineAnnealingWarmRestarts(opt, T_0=2).step(-1)


# ---------------------------------------------------------------------------- ReduceLROnPlateau
# A metric that improves, stalls, improves a little (below the threshold in rel mode), stalls again.
METRICS = [1.0, 0.8, 0.8, 0.79999, 0.81, 0.85, 0.7, 0.7, 0.71, 0.69995, 0.72, 0.73, 0.6] + [0.6] * 17
PLATEAUS = {
    "defaults-patience2": dict(patience=2),
    "max-abs": dict(mode="max", threshold_mode="abs", threshold=0.01, patience=1, factor=0.5),
    "max-rel": dict(mode="max", patience=0, factor=0.7),
    "min-abs-cooldown": dict(threshold_mode="abs", threshold=0.05, patience=1, cooldown=2, factor=0.5),
    "min_lr-per-group": dict(patience=0, factor=0.5, min_lr=[0.02, 0.004]),
    "min_lr-eps": dict(patience=0, factor=0.9, min_lr=0.05, eps=1e-3),
}


@pytest.mark.parametrize("name", list(PLATEAUS))
def test_reduce_on_plateau_matches_torch(name):
    options = PLATEAUS[name]
    kinone, torch_pair = _both(lambda S, opt: S.ReduceLROnPlateau(opt, **options))
    _assert_same_lrs("after construction", kinone, torch_pair)
    for epoch, metric in enumerate(METRICS):
        if epoch == 15:  # resume mid-run from a state dict that went through JSON
            state = json.loads(json.dumps(kinone[1].state_dict()))
            optimizer_state = kinone[0].state_dict()
            kinone = _both(lambda S, opt: S.ReduceLROnPlateau(opt, **options))[0]
            kinone[0].load_state_dict(optimizer_state)
            kinone[1].load_state_dict(state)
        for opt, sched in (kinone, torch_pair):
            opt.step()
            sched.step(metric)
        _assert_same_lrs(f"after epoch {epoch} (metric {metric})", kinone, torch_pair)
        (_, ours), (_, theirs) = kinone, torch_pair
        assert (ours.best, ours.num_bad_epochs, ours.cooldown_counter) == (
            theirs.best,
            theirs.num_bad_epochs,
            theirs.cooldown_counter,
        )


def test_reduce_on_plateau_takes_a_one_element_tensor_and_leaves_initial_lr_alone():
    opt = ko.SGD([Tensor(np.zeros(2), requires_grad=True)], lr=0.1)
    sched = ko.lr_scheduler.ReduceLROnPlateau(opt, patience=0)
    assert "initial_lr" not in opt.param_groups[0]  # as PyTorch's
    sched.step(Tensor(np.array(1.0)))
    sched.step(Tensor(np.array(2.0)))
    assert opt.param_groups[0]["lr"] == sched.get_last_lr()[0] == pytest.approx(0.01)


def test_reduce_on_plateau_refuses_what_torch_refuses():
    opt = ko.SGD([Tensor(np.zeros(2), requires_grad=True)], lr=0.1)
    S = ko.lr_scheduler
    with pytest.raises(ValueError, match="ReduceLROnPlateau: factor must be < 1.0, got 1.0"):
        S.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="ReduceLROnPlateau: mode must be 'min' or 'max', got 'lowest'"):
        S.ReduceLROnPlateau(opt, mode="lowest")
    with pytest.raises(ValueError, match="ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got 'pct'"):
        S.ReduceLROnPlateau(opt, threshold_mode="pct")
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau: expected 1 min_lrs \(one per parameter group\), got 2"):
        S.ReduceLROnPlateau(opt, min_lr=[0.1, 0.2])
    with pytest.raises(TypeError, match=r"ReduceLROnPlateau.step: expected the epoch's metric, as step\(metric\)"):
        S.ReduceLROnPlateau(opt).step()
    with pytest.raises(ValueError, match=r"LambdaLR: expected 1 lr_lambdas \(one per parameter group\), got 2"):
        S.LambdaLR(opt, [lambda e: 1.0, lambda e: 1.0])
