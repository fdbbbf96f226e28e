"""Parity with torch.optim: the same gradients into Kinone's and PyTorch's optimizers and
schedulers, step for step.

Gradients come from NumPy (a small two-layer tanh regression, differentiated by hand) at
Kinone's current parameters, and the same arrays are set as `.grad` on both sides, so the
comparison isolates the update rule. One parameter gets no gradient every fourth step, to
check that both skip it. float64 trajectories must agree to rtol 1e-10 over 25 steps (they
differ by ~1e-13: PyTorch's CPU kernels fuse some multiply-adds). Learning-rate schedules
must agree bit for bit.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import kinone.optim as ko  # noqa: E402
from kinone.autograd import Tensor  # noqa: E402

STEPS = 25
TOLERANCES = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-6)}


# ---------------------------------------------------------------------------- problem
def _problem(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 5))
    y = rng.standard_normal((16, 3))
    params = [
        rng.standard_normal((5, 4)) * 0.5,
        rng.standard_normal(4) * 0.1,
        rng.standard_normal((4, 3)) * 0.5,
        np.zeros(3),
    ]
    return x.astype(dtype), y.astype(dtype), [p.astype(dtype) for p in params]


def _gradients(params, x, y):
    """d/dθ of 0.5·mean_n ‖tanh(x·W1 + b1)·W2 + b2 - y‖²."""
    w1, b1, w2, b2 = params
    h = np.tanh(x @ w1 + b1)
    residual = (h @ w2 + b2 - y) / len(x)
    dh = residual @ w2.T * (1 - h * h)
    return [x.T @ dh, dh.sum(0), h.T @ residual, residual.sum(0)]


def _groups(params, spec):
    """`spec` None: one plain list; else a list of (slice, options) groups."""
    if spec is None:
        return list(params)
    return [dict(options, params=list(params[part])) for part, options in spec]


def _through_npz_and_json(state):
    """What a checkpoint does: arrays to .npz, everything else to JSON, and back."""
    arrays = {}

    def encode(value):
        if isinstance(value, np.ndarray):
            key = f"a{len(arrays)}"
            arrays[key] = value
            return {"__array__": key}
        if isinstance(value, dict):
            return {str(k): encode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [encode(v) for v in value]
        return value

    text = json.dumps(encode(state))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    loaded = np.load(buffer)

    def decode(value):
        if isinstance(value, dict):
            if set(value) == {"__array__"}:
                return loaded[value["__array__"]]
            return {k: decode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [decode(v) for v in value]
        return value

    return decode(json.loads(text))


def _set_grads(step, kinone_params, torch_params, grads):
    for i, (kp, tp, g) in enumerate(zip(kinone_params, torch_params, grads)):
        if i == 3 and step % 4 == 3:
            kp.grad, tp.grad = None, None
        else:
            kp.grad = Tensor(g.copy())
            tp.grad = torch.from_numpy(g.copy())


def _assert_params_match(step, kinone_params, torch_params, dtype):
    for i, (kp, tp) in enumerate(zip(kinone_params, torch_params)):
        assert kp.data.dtype == dtype
        np.testing.assert_allclose(
            kp.data, tp.detach().numpy(), **TOLERANCES[dtype], err_msg=f"param {i} after step {step + 1}"
        )


def _assert_state_matches(kinone_opt, torch_opt, kinone_params, torch_params, dtype):
    for kp, tp in zip(kinone_params, torch_params):
        ours, theirs = kinone_opt.state.get(kp, {}), torch_opt.state.get(tp, {})
        assert set(ours) == set(theirs)
        for key, value in theirs.items():
            if key == "step":
                assert ours[key] == value.item()
            else:
                np.testing.assert_allclose(ours[key], value.numpy(), **TOLERANCES[dtype])


# ---------------------------------------------------------------------------- optimizers
FIRST, REST = slice(0, 2), slice(2, 4)
CASES = [
    ("SGD", dict(lr=0.1), None),
    ("SGD", dict(lr=0.1, momentum=0.9), None),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3), None),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True), None),
    ("SGD", dict(lr=0.1, weight_decay=0.05), None),
    ("SGD", dict(lr=0.1, maximize=True), None),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.1, weight_decay=0.05, maximize=True), None),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01, maximize=True), None),
    (
        "SGD",
        dict(lr=0.05, momentum=0.9),
        [(FIRST, dict(lr=0.2, dampening=0.5)), (REST, dict(nesterov=True, weight_decay=0.01))],
    ),
    ("Adam", dict(), None),
    ("Adam", dict(lr=0.01, weight_decay=0.1), None),
    ("Adam", dict(lr=0.01, amsgrad=True), None),
    ("Adam", dict(lr=0.01, maximize=True), None),
    ("Adam", dict(lr=0.01, betas=(0.3, 0.5), eps=1e-3), None),  # lerp weight >= 0.5 branch
    ("Adam", dict(lr=0.01, weight_decay=0.1, amsgrad=True, maximize=True), None),
    ("Adam", dict(lr=0.01), [(FIRST, dict(lr=0.03, amsgrad=True)), (REST, dict(betas=(0.8, 0.99), weight_decay=0.1))]),
    ("AdamW", dict(), None),
    ("AdamW", dict(lr=0.01, weight_decay=0.1), None),
    ("AdamW", dict(lr=0.01, weight_decay=0), None),
    ("AdamW", dict(lr=0.01, amsgrad=True, maximize=True), None),
    ("AdamW", dict(lr=0.01, betas=(0.3, 0.9)), [(FIRST, dict(weight_decay=0.5)), (REST, dict(lr=0.05, amsgrad=True))]),
]


def _case_id(case):
    name, options, spec = case
    text = ",".join(f"{k}={v}" for k, v in options.items())
    return f"{name}({text}){'-2groups' if spec else ''}"


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_trajectory_matches_torch(case, dtype):
    name, options, spec = case
    x, y, initial = _problem(dtype)
    kinone_params = [Tensor(p.copy(), requires_grad=True) for p in initial]
    torch_params = [torch.tensor(p.copy(), requires_grad=True) for p in initial]
    kinone_opt = getattr(ko, name)(_groups(kinone_params, spec), **options)
    torch_opt = getattr(torch.optim, name)(_groups(torch_params, spec), **options)
    for step in range(STEPS):
        _set_grads(step, kinone_params, torch_params, _gradients([p.data for p in kinone_params], x, y))
        kinone_opt.step()
        torch_opt.step()
        _assert_params_match(step, kinone_params, torch_params, dtype)
    _assert_state_matches(kinone_opt, torch_opt, kinone_params, torch_params, dtype)


RESUME_CASES = [CASES[7], CASES[8], CASES[14], CASES[15], CASES[20]]


@pytest.mark.parametrize("case", RESUME_CASES, ids=[_case_id(c) for c in RESUME_CASES])
def test_resumed_run_matches_uninterrupted_torch_run(case):
    """12 steps, a state dict through .npz + JSON into a new optimizer, 13 more steps."""
    name, options, spec = case
    x, y, initial = _problem(np.float64)
    torch_params = [torch.tensor(p.copy(), requires_grad=True) for p in initial]
    torch_opt = getattr(torch.optim, name)(_groups(torch_params, spec), **options)
    kinone_params = [Tensor(p.copy(), requires_grad=True) for p in initial]
    kinone_opt = getattr(ko, name)(_groups(kinone_params, spec), **options)
    for step in range(STEPS):
        if step == 12:
            saved = _through_npz_and_json(kinone_opt.state_dict())
            kinone_params = [Tensor(p.data.copy(), requires_grad=True) for p in kinone_params]
            kinone_opt = getattr(ko, name)(_groups(kinone_params, spec), **options)
            kinone_opt.load_state_dict(saved)
        _set_grads(step, kinone_params, torch_params, _gradients([p.data for p in kinone_params], x, y))
        kinone_opt.step()
        torch_opt.step()
        _assert_params_match(step, kinone_params, torch_params, np.float64)
    _assert_state_matches(kinone_opt, torch_opt, kinone_params, torch_params, np.float64)


def test_state_dict_layout_matches_torch():
    """Same parameter numbering, same state names, same group options (ours are a subset)."""
    _, _, initial = _problem(np.float64)
    for name, options in [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(amsgrad=True)), ("AdamW", dict())]:
        kinone_params = [Tensor(p.copy(), requires_grad=True) for p in initial]
        torch_params = [torch.tensor(p.copy(), requires_grad=True) for p in initial]
        spec = [(FIRST, dict(lr=0.5)), (REST, {})]
        kinone_opt = getattr(ko, name)(_groups(kinone_params, spec), **options)
        torch_opt = getattr(torch.optim, name)(_groups(torch_params, spec), **options)
        for kp, tp in zip(kinone_params[1:], torch_params[1:]):
            kp.grad, tp.grad = Tensor(np.ones_like(kp.data)), torch.ones_like(tp)
        kinone_opt.step()
        torch_opt.step()
        ours, theirs = kinone_opt.state_dict(), torch_opt.state_dict()
        assert [g["params"] for g in ours["param_groups"]] == [g["params"] for g in theirs["param_groups"]]
        for group, torch_group in zip(ours["param_groups"], theirs["param_groups"]):
            for key, value in group.items():
                expected = torch_group[key]
                assert value == (list(expected) if isinstance(expected, tuple) else expected), key
        assert ours["state"].keys() == theirs["state"].keys() == {1, 2, 3}
        for index in ours["state"]:
            assert ours["state"][index].keys() == theirs["state"][index].keys()


# ---------------------------------------------------------------------------- schedulers
def _sgd(module_optim, params):
    return module_optim.SGD([{"params": params[:2]}, {"params": params[2:], "lr": 0.02}], lr=0.1, momentum=0.9)


def _adam(module_optim, params):
    return module_optim.Adam([{"params": params[:2]}, {"params": params[2:], "lr": 0.003}], lr=0.01)


SCHEDULES = {
    "StepLR": (_sgd, lambda S, opt: S.StepLR(opt, step_size=3, gamma=0.5)),
    "MultiStepLR": (_sgd, lambda S, opt: S.MultiStepLR(opt, milestones=[2, 5, 5, 11], gamma=0.5)),
    "CosineAnnealingLR-eta_min": (_sgd, lambda S, opt: S.CosineAnnealingLR(opt, T_max=10, eta_min=0.001)),
    "CosineAnnealingLR": (_sgd, lambda S, opt: S.CosineAnnealingLR(opt, T_max=7)),
    "LinearLR-defaults": (_sgd, lambda S, opt: S.LinearLR(opt)),
    "LinearLR": (_sgd, lambda S, opt: S.LinearLR(opt, start_factor=0.1, end_factor=0.8, total_iters=10)),
    "OneCycleLR": (_sgd, lambda S, opt: S.OneCycleLR(opt, max_lr=[1.0, 0.5], total_steps=30)),
    "OneCycleLR-linear-three_phase": (
        _sgd,
        lambda S, opt: S.OneCycleLR(opt, max_lr=0.8, total_steps=30, anneal_strategy="linear", three_phase=True),
    ),
    "OneCycleLR-adam-epochs": (
        _adam,
        lambda S, opt: S.OneCycleLR(
            opt, max_lr=0.05, epochs=6, steps_per_epoch=5, pct_start=0.25, div_factor=10.0, final_div_factor=100.0
        ),
    ),
    "OneCycleLR-no-momentum": (
        _sgd,
        lambda S, opt: S.OneCycleLR(opt, max_lr=0.3, total_steps=31, cycle_momentum=False),
    ),
    "SequentialLR-warmup-cosine": (
        _sgd,
        lambda S, opt: S.SequentialLR(
            opt, [S.LinearLR(opt, start_factor=0.1, total_iters=5), S.CosineAnnealingLR(opt, T_max=20)], milestones=[5]
        ),
    ),
    "SequentialLR-three": (
        _adam,
        lambda S, opt: S.SequentialLR(
            opt,
            [
                S.LinearLR(opt, start_factor=0.25, total_iters=3),
                S.StepLR(opt, step_size=4, gamma=0.5),
                S.CosineAnnealingLR(opt, T_max=8, eta_min=1e-4),
            ],
            milestones=[3, 12],
        ),
    ),
}


def _hyper(opt):
    """What the schedulers write: lr, and momentum or beta1."""
    return [(g["lr"], g["momentum"] if "momentum" in g else g["betas"][0]) for g in opt.param_groups]


def _torch_side(name):
    make_opt, make_sched = SCHEDULES[name]
    opt = make_opt(torch.optim, [torch.zeros(2, requires_grad=True) for _ in range(4)])
    return opt, make_sched(torch.optim.lr_scheduler, opt)


def _kinone_side(name):
    make_opt, make_sched = SCHEDULES[name]
    opt = make_opt(ko, [Tensor(np.zeros(2), requires_grad=True) for _ in range(4)])
    return opt, make_sched(ko.lr_scheduler, opt)


def _assert_schedules_match(step, kinone, torch_pair):
    """Bit for bit: the same recursions and closed forms in the same float order as PyTorch."""
    (kinone_opt, kinone_sched), (torch_opt, torch_sched) = kinone, torch_pair
    assert kinone_sched.get_last_lr() == torch_sched.get_last_lr(), f"lr after step {step}"
    assert _hyper(kinone_opt) == _hyper(torch_opt), f"lr/momentum in the groups after step {step}"


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_matches_torch(name):
    kinone, torch_pair = _kinone_side(name), _torch_side(name)
    _assert_schedules_match(0, kinone, torch_pair)
    for step in range(1, 31):
        for opt, sched in (kinone, torch_pair):
            opt.step()
            sched.step()
        _assert_schedules_match(step, kinone, torch_pair)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_resumed_schedule_matches_uninterrupted_torch_schedule(name):
    """Scheduler and optimizer state through JSON at step 13, into freshly built objects."""
    kinone, torch_pair = _kinone_side(name), _torch_side(name)
    for step in range(1, 31):
        if step == 13:
            optimizer_state = _through_npz_and_json(kinone[0].state_dict())
            scheduler_state = json.loads(json.dumps(kinone[1].state_dict()))
            kinone = _kinone_side(name)  # the scheduler first, then the states (as in PyTorch)
            kinone[0].load_state_dict(optimizer_state)
            kinone[1].load_state_dict(scheduler_state)
            _assert_schedules_match(step - 1, kinone, torch_pair)
        for opt, sched in (kinone, torch_pair):
            opt.step()
            sched.step()
        _assert_schedules_match(step, kinone, torch_pair)


def test_chained_schedulers_compose_as_in_torch():
    """Two chainable schedulers stepping one optimizer multiply, as PyTorch's do."""
    sides = []
    for optim in (ko, torch.optim):
        params = [Tensor(np.zeros(2), requires_grad=True)] if optim is ko else [torch.zeros(2, requires_grad=True)]
        opt = optim.SGD(params, lr=0.5)
        S = optim.lr_scheduler
        sides.append((opt, [S.LinearLR(opt, start_factor=0.2, total_iters=4), S.StepLR(opt, step_size=3, gamma=0.5)]))
    for _ in range(20):
        for opt, schedulers in sides:
            opt.step()
            for scheduler in schedulers:
                scheduler.step()
        assert sides[0][0].param_groups[0]["lr"] == pytest.approx(sides[1][0].param_groups[0]["lr"], rel=1e-12)


def test_onecycle_stepping_past_total_steps_fails_in_both():
    for opt, sched in (_kinone_side("OneCycleLR"), _torch_side("OneCycleLR")):
        for _ in range(30):
            opt.step()
            sched.step()
        opt.step()
        with pytest.raises(ValueError, match="(?i)tried to step 31 times"):
            sched.step()
