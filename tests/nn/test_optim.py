"""kinone.optim without PyTorch: update rules worked by hand, state, state dicts, errors,
and the schedulers' known values. (Step-for-step parity with torch.optim is in
test_optim_parity.py.)"""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from kinone.autograd import Tensor, is_grad_enabled, no_grad, tensor
from kinone.optim import SGD, Adam, AdamW, Optimizer, lr_scheduler


def _param(values, dtype=np.float64):
    return Tensor(np.array(values, dtype=dtype), requires_grad=True)


def _set_grad(p, values):
    p.grad = Tensor(np.array(values, dtype=p.data.dtype))


# ---------------------------------------------------------------------------- SGD by hand
def test_sgd_plain_step():
    p = _param([1.0, -2.0])
    _set_grad(p, [0.5, 4.0])
    SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.data, [1.0 - 0.05, -2.0 - 0.4])


def test_sgd_momentum_buffer_is_seeded_with_the_first_gradient():
    p = _param([0.0])
    opt = SGD([p], lr=1.0, momentum=0.9, dampening=0.5)
    _set_grad(p, [2.0])
    opt.step()
    # first step: b = g (no dampening, no zero start)
    assert opt.state[p]["momentum_buffer"].tolist() == [2.0]
    np.testing.assert_allclose(p.data, [-2.0])
    _set_grad(p, [1.0])
    opt.step()
    # b = 0.9·2 + (1 - 0.5)·1 = 2.3
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"], [2.3])
    np.testing.assert_allclose(p.data, [-4.3])


def test_sgd_nesterov_looks_ahead():
    p = _param([0.0])
    opt = SGD([p], lr=1.0, momentum=0.5, nesterov=True)
    _set_grad(p, [1.0])
    opt.step()  # b = 1; step g + 0.5·b = 1.5
    np.testing.assert_allclose(p.data, [-1.5])
    _set_grad(p, [1.0])
    opt.step()  # b = 0.5 + 1 = 1.5; step 1 + 0.75 = 1.75
    np.testing.assert_allclose(p.data, [-3.25])


def test_sgd_weight_decay_and_maximize():
    p = _param([2.0])
    _set_grad(p, [1.0])
    SGD([p], lr=0.1, weight_decay=0.5).step()  # g' = 1 + 0.5·2 = 2
    np.testing.assert_allclose(p.data, [1.8])
    q = _param([2.0])
    _set_grad(q, [1.0])
    SGD([q], lr=0.1, weight_decay=0.5, maximize=True).step()  # g' = -1 + 1 = 0
    np.testing.assert_allclose(q.data, [2.0])
    r = _param([2.0])
    _set_grad(r, [1.0])
    SGD([r], lr=0.1, maximize=True).step()
    np.testing.assert_allclose(r.data, [2.1])


def test_sgd_without_momentum_keeps_no_state():
    p = _param([1.0])
    opt = SGD([p], lr=0.1)
    _set_grad(p, [1.0])
    opt.step()
    assert opt.state_dict()["state"] == {}


# ---------------------------------------------------------------------------- Adam by hand
def test_adam_first_step_moves_by_lr_times_sign():
    p = _param([1.0, 1.0, 1.0])
    _set_grad(p, [3.0, -0.5, 1e-3])
    Adam([p], lr=0.01).step()
    # m̂ = g, v̂ = g², step = lr·g/(|g| + eps)
    g = np.array([3.0, -0.5, 1e-3])
    np.testing.assert_allclose(p.data, 1 - 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)


@pytest.mark.parametrize("beta1", [0.8, 0.3])  # PyTorch's lerp takes another form for 1 - β1 >= 0.5
def test_adam_three_steps_by_formula(beta1):
    p = _param([0.5])
    opt = Adam([p], lr=0.1, betas=(beta1, 0.9), eps=1e-3)
    m = v = 0.0
    theta = 0.5
    for t, g in enumerate([1.0, -2.0, 0.5], start=1):
        _set_grad(p, [g])
        opt.step()
        m = beta1 * m + (1 - beta1) * g
        v = 0.9 * v + 0.1 * g * g
        theta -= 0.1 / (1 - beta1**t) * m / (math.sqrt(v) / math.sqrt(1 - 0.9**t) + 1e-3)
        np.testing.assert_allclose(p.data, [theta], rtol=1e-12)
    assert opt.state[p]["step"] == 3
    np.testing.assert_allclose(opt.state[p]["exp_avg"], [m], rtol=1e-12)
    np.testing.assert_allclose(opt.state[p]["exp_avg_sq"], [v], rtol=1e-12)


def test_adamw_decays_weights_directly_and_adam_through_the_gradient():
    p, q = _param([2.0, -4.0]), _param([2.0, -4.0])
    _set_grad(p, [0.0, 0.0])
    _set_grad(q, [0.0, 0.0])
    AdamW([p], lr=0.1, weight_decay=0.5).step()
    np.testing.assert_allclose(p.data, [2.0 * 0.95, -4.0 * 0.95])  # p·(1 - lr·λ), then a zero step
    Adam([q], lr=0.1, weight_decay=0.5).step()
    # L2: g = λ·p, normalised by Adam: a step of ~lr·sign(p)
    np.testing.assert_allclose(q.data, [1.9, -3.9], rtol=1e-6)


def test_amsgrad_keeps_the_largest_second_moment():
    p = _param([0.0])
    opt = Adam([p], lr=0.1, amsgrad=True)
    for g in [10.0, 0.1, 0.1]:
        _set_grad(p, [g])
        opt.step()
    state = opt.state[p]
    assert state["max_exp_avg_sq"][0] > state["exp_avg_sq"][0]
    np.testing.assert_allclose(state["max_exp_avg_sq"], [0.001 * 100.0])


def test_adam_maximize_climbs():
    p = _param([0.0])
    _set_grad(p, [1.0])
    Adam([p], lr=0.1, maximize=True).step()
    assert p.data[0] == pytest.approx(0.1)


# ---------------------------------------------------------------------------- common behaviour
OPTIMIZERS = [
    lambda ps: SGD(ps, lr=0.1),
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, dampening=0.2, maximize=True),
    lambda ps: Adam(ps, lr=0.1, weight_decay=0.1, amsgrad=True),
    lambda ps: Adam(ps, lr=0.1, betas=(0.3, 0.9), maximize=True),
    lambda ps: AdamW(ps, lr=0.1, amsgrad=True),
]
OPTIMIZER_IDS = [
    "sgd",
    "sgd-nesterov-wd",
    "sgd-dampening-maximize",
    "adam-wd-amsgrad",
    "adam-betas-maximize",
    "adamw-amsgrad",
]


def _run(make, steps, params=None, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    params = params or [_param(rng.standard_normal((3, 2)), dtype), _param(rng.standard_normal(2), dtype)]
    opt = make(params)
    for _ in range(steps):
        for p in params:
            p.grad = Tensor((rng.standard_normal(p.shape) + p.data).astype(dtype))
        opt.step()
    return params, opt


@pytest.mark.parametrize("make", OPTIMIZERS, ids=OPTIMIZER_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_updates_are_in_place_and_keep_the_dtype(make, dtype):
    p = _param(np.ones((3, 2)), dtype)
    array = p.data
    view = array[0]  # someone else's view of the parameter sees the update
    params, opt = _run(make, 3, [p], dtype)
    assert p.data is array and p.data.dtype == dtype
    assert not np.allclose(view, 1.0)
    assert p.is_leaf and p.grad_fn is None
    for value in opt.state[p].values():
        if isinstance(value, np.ndarray):
            assert value.dtype == dtype


def test_float32_parameters_stay_float32_with_float64_gradients():
    p = _param([1.0, 2.0], np.float32)
    p.grad = Tensor(np.array([1.0, 1.0]))  # float64
    opt = Adam([p], lr=0.1)
    opt.step()
    assert p.data.dtype == np.float32 and opt.state[p]["exp_avg"].dtype == np.float32


@pytest.mark.parametrize("make", OPTIMIZERS, ids=OPTIMIZER_IDS)
def test_parameters_without_grad_are_skipped(make):
    a, b = _param([1.0, 2.0]), _param([3.0])
    opt = make([a, b])
    _set_grad(a, [1.0, 1.0])
    opt.step()
    assert b.data.tolist() == [3.0]
    assert not opt.state.get(b)
    assert a.data.tolist() != [1.0, 2.0]


def test_param_groups_have_their_own_options():
    a, b = _param([1.0]), _param([1.0])
    opt = SGD([{"params": [a], "lr": 0.5}, {"params": b}], lr=0.1, momentum=0.0)
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.1]
    assert len(opt.param_groups[1]["params"]) == 1 and opt.param_groups[1]["params"][0] is b  # a bare Tensor is wrapped
    _set_grad(a, [1.0])
    _set_grad(b, [1.0])
    opt.step()
    np.testing.assert_allclose([a.data[0], b.data[0]], [0.5, 0.9])
    c = _param([1.0])
    opt.add_param_group({"params": [c], "weight_decay": 1.0})
    assert opt.param_groups[2]["lr"] == 0.1 and opt.param_groups[2]["weight_decay"] == 1.0


def test_zero_grad():
    a, b = _param([1.0]), _param([2.0])
    opt = SGD([a, b], lr=0.1)
    _set_grad(a, [3.0])
    grad = a.grad
    opt.zero_grad(set_to_none=False)
    assert a.grad is grad and grad.data.tolist() == [0.0] and b.grad is None
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_step_records_no_graph_and_the_closure_runs_with_grad():
    p = _param([3.0])
    opt = SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        assert is_grad_enabled()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with no_grad():
        loss = opt.step(closure)
    assert loss.item() == 9.0
    np.testing.assert_allclose(p.data, [3.0 - 0.1 * 6.0])
    assert is_grad_enabled() and p.is_leaf


def test_training_a_tensor_with_backward_reaches_the_minimum():
    w = _param([5.0, -3.0])
    opt = Adam([w], lr=0.3)
    for _ in range(200):
        opt.zero_grad()
        ((w - tensor(np.array([1.0, 2.0]))) ** 2).sum().backward()
        opt.step()
    np.testing.assert_allclose(w.data, [1.0, 2.0], atol=1e-2)


# ---------------------------------------------------------------------------- state dict
def _json_and_npz(state):
    """The caller's checkpoint: arrays to .npz, the rest to JSON (integer keys become strings)."""
    arrays = {}

    def encode(value):
        if isinstance(value, np.ndarray):
            arrays[f"a{len(arrays)}"] = value
            return {"__array__": f"a{len(arrays) - 1}"}
        if isinstance(value, dict):
            return {str(k): encode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [encode(v) for v in value]
        assert value is None or isinstance(value, (bool, int, float, str)), type(value)
        return value

    text = json.dumps(encode(state))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    loaded = np.load(buffer)

    def decode(value):
        if isinstance(value, dict):
            return (
                loaded[value["__array__"]] if set(value) == {"__array__"} else {k: decode(v) for k, v in value.items()}
            )
        if isinstance(value, list):
            return [decode(v) for v in value]
        return value

    return decode(json.loads(text))


@pytest.mark.parametrize("make", OPTIMIZERS, ids=OPTIMIZER_IDS)
def test_state_dict_round_trip_continues_identically(make):
    params, opt = _run(make, 4)
    saved = _json_and_npz(opt.state_dict())
    copies = [_param(p.data.copy()) for p in params]
    resumed = make(copies)
    resumed.load_state_dict(saved)
    rng = np.random.default_rng(1)
    for _ in range(5):
        for p, q in zip(params, copies):
            g = rng.standard_normal(p.shape)
            p.grad, q.grad = Tensor(g.copy()), Tensor(g.copy())
        opt.step()
        resumed.step()
        for p, q in zip(params, copies):
            np.testing.assert_array_equal(p.data, q.data)


def test_state_dict_layout_and_snapshot():
    a, b = _param([1.0, 2.0]), _param([3.0])
    opt = Adam([{"params": [a]}, {"params": [b], "lr": 0.5}], betas=(0.8, 0.9))
    _set_grad(b, [1.0])
    opt.step()
    state = opt.state_dict()
    assert [g["params"] for g in state["param_groups"]] == [[0], [1]]
    assert state["param_groups"][1]["lr"] == 0.5 and state["param_groups"][0]["betas"] == [0.8, 0.9]
    assert list(state["state"]) == [1] and state["state"][1]["step"] == 1
    assert set(state["state"][1]) == {"step", "exp_avg", "exp_avg_sq"}
    saved = state["state"][1]["exp_avg"].copy()
    opt.step()
    np.testing.assert_array_equal(state["state"][1]["exp_avg"], saved)  # a copy, not the live array
    opt.load_state_dict(state)
    assert opt.param_groups[0]["betas"] == (0.8, 0.9)  # tuples come back as tuples
    assert opt.param_groups[1]["params"][0] is b


def test_loaded_state_is_cast_to_the_parameter_dtype_and_copied():
    a = _param([1.0, 2.0], np.float32)
    opt = SGD([a], lr=0.1, momentum=0.9)
    buffer = np.array([5.0, 6.0])  # float64
    opt.load_state_dict({"state": {0: {"momentum_buffer": buffer}}, "param_groups": opt.state_dict()["param_groups"]})
    loaded = opt.state[a]["momentum_buffer"]
    assert loaded.dtype == np.float32 and not np.shares_memory(loaded, buffer)


def test_load_state_dict_errors():
    a, b = _param([1.0, 2.0]), _param([3.0])
    opt = SGD([a, b], lr=0.1, momentum=0.9)
    _set_grad(a, [1.0, 1.0])
    opt.step()
    good = opt.state_dict()
    two_groups = SGD([{"params": [a]}, {"params": [b]}], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="state dict has 1 parameter groups, the optimizer has 2"):
        two_groups.load_state_dict(good)
    with pytest.raises(ValueError, match="group 0 has 2 parameters in the state dict but 1 in the optimizer"):
        SGD([a], lr=0.1).load_state_dict(good)
    with pytest.raises(ValueError, match=r"lacks option\(s\) \['betas', 'eps', 'amsgrad'\]"):
        Adam([a, b]).load_state_dict(good)
    wrong_shape = _param([1.0, 2.0, 3.0])
    with pytest.raises(
        ValueError, match=r"'momentum_buffer' of parameter 0 has shape \(2,\), the parameter has shape \(3,\)"
    ):
        SGD([wrong_shape, b], lr=0.1, momentum=0.9).load_state_dict(good)
    with pytest.raises(ValueError, match="state for parameter 5"):
        opt.load_state_dict({"state": {5: {}}, "param_groups": good["param_groups"]})
    bad_lr = {"state": {}, "param_groups": [dict(good["param_groups"][0], lr=-1.0)]}
    with pytest.raises(ValueError, match="SGD: invalid lr -1.0"):
        opt.load_state_dict(bad_lr)
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})


# ---------------------------------------------------------------------------- errors
def test_parameter_errors():
    p = _param([1.0])
    with pytest.raises(ValueError, match="SGD: got an empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match="single Tensor"):
        SGD(p, lr=0.1)
    with pytest.raises(TypeError, match="set's order"):
        SGD({p}, lr=0.1)
    with pytest.raises(ValueError, match=r"params\[1\] \(shape \(1,\)\) appears more than once"):
        SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="appears more than once"):
        Adam([{"params": [p]}, {"params": [p]}])
    with pytest.raises(TypeError, match=r"floating-point Tensors, but params\[0\] has dtype int64"):
        SGD([tensor([1, 2])], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        SGD([p * 2], lr=0.1)
    with pytest.raises(TypeError, match=r"can only optimize Tensors, but params\[0\] is ndarray"):
        SGD([np.zeros(2)], lr=0.1)
    with pytest.raises(ValueError, match="needs a 'params' entry"):
        SGD([{"lr": 0.1}], lr=0.1)
    opt = SGD([p], lr=0.1)
    with pytest.raises(ValueError, match="appears more than once"):
        opt.add_param_group({"params": [p]})
    q = _param([1.0, 2.0])
    opt.add_param_group({"params": q})
    q.grad = Tensor(np.ones(3))
    with pytest.raises(ValueError, match=r"shape \(2,\) has a gradient of shape \(3,\)"):
        opt.step()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda ps: SGD(ps, lr=-0.1), r"SGD: invalid lr -0.1; expected a number >= 0.0"),
        (lambda ps: SGD(ps, lr=float("nan")), r"SGD: invalid lr nan"),
        (lambda ps: SGD(ps, lr=0.1, momentum=-0.5), r"SGD: invalid momentum -0.5"),
        (lambda ps: SGD(ps, lr=0.1, weight_decay=-1), r"SGD: invalid weight_decay -1"),
        (lambda ps: SGD(ps, lr=0.1, nesterov=True), r"SGD: nesterov=True requires momentum > 0 and dampening = 0"),
        (lambda ps: SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), r"dampening 0.1"),
        (lambda ps: SGD([{"params": ps, "lr": -2.0}], lr=0.1), r"SGD: invalid lr -2.0"),
        (lambda ps: Adam(ps, lr=-1e-3), r"Adam: invalid lr -0.001"),
        (lambda ps: Adam(ps, betas=(1.0, 0.999)), r"Adam: invalid betas\[0\] 1.0; expected a number in \[0.0, 1.0\)"),
        (lambda ps: Adam(ps, betas=(0.9, -0.1)), r"Adam: invalid betas\[1\] -0.1"),
        (lambda ps: Adam(ps, betas=0.9), r"Adam: invalid betas 0.9; expected a pair"),
        (lambda ps: Adam(ps, eps=-1e-8), r"Adam: invalid eps -1e-08"),
        (lambda ps: AdamW(ps, weight_decay=-0.01), r"AdamW: invalid weight_decay -0.01"),
        (lambda ps: AdamW(ps, lr="0.1"), r"AdamW: invalid lr '0.1'"),
    ],
)
def test_invalid_options_name_the_optimizer_option_and_value(make, message):
    with pytest.raises(ValueError, match=message):
        make([_param([1.0])])


def test_the_base_class_has_no_step():
    class Bare(Optimizer):
        pass

    with pytest.raises(NotImplementedError):
        Bare([_param([1.0])], {}).step()


# ---------------------------------------------------------------------------- schedulers
def _opt(lrs=(0.1,), optimizer=SGD, **options):
    groups = [{"params": [_param([0.0])], "lr": lr} for lr in lrs]
    return optimizer(groups, lr=lrs[0], **options) if optimizer is SGD else optimizer(groups, **options)


def _lrs(scheduler, steps, group=0):
    values = [scheduler.get_last_lr()[group]]
    for _ in range(steps):
        scheduler.optimizer.step()
        scheduler.step()
        values.append(scheduler.optimizer.param_groups[group]["lr"])
    return values


def test_scheduler_sets_initial_lr_and_base_lrs():
    opt = _opt((0.1, 0.02))
    scheduler = lr_scheduler.StepLR(opt, step_size=2)
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.02]
    assert scheduler.base_lrs == [0.1, 0.02] and scheduler.last_epoch == 0
    assert scheduler.get_last_lr() == [0.1, 0.02]


def test_steplr_and_multisteplr_values():
    np.testing.assert_allclose(
        _lrs(lr_scheduler.StepLR(_opt(), step_size=2, gamma=0.5), 6), [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125]
    )
    scheduler = lr_scheduler.MultiStepLR(_opt(), milestones=[1, 3, 3], gamma=0.1)
    np.testing.assert_allclose(_lrs(scheduler, 4), [0.1, 0.01, 0.01, 1e-4, 1e-4])


def test_cosine_annealing_values():
    values = _lrs(lr_scheduler.CosineAnnealingLR(_opt((1.0,)), T_max=4, eta_min=0.2), 8)
    expected = [0.2 + 0.8 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(9)]
    np.testing.assert_allclose(values, expected, rtol=1e-12, atol=1e-15)
    assert values[2] == pytest.approx(0.6) and values[4] == pytest.approx(0.2) and values[8] == pytest.approx(1.0)


def test_linear_warmup_values():
    values = _lrs(lr_scheduler.LinearLR(_opt((0.3,)), start_factor=0.5, total_iters=4), 6)
    np.testing.assert_allclose(values, [0.15, 0.1875, 0.225, 0.2625, 0.3, 0.3, 0.3], rtol=1e-12)
    values = _lrs(lr_scheduler.LinearLR(_opt((0.3,))), 6)  # defaults: 1/3 up to 1 over 5
    np.testing.assert_allclose(values, [0.1, 0.14, 0.18, 0.22, 0.26, 0.3, 0.3], rtol=1e-12)


def test_onecycle_lr_and_momentum():
    opt = _opt((0.1,), momentum=0.9)
    scheduler = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=12, pct_start=0.25)
    group = opt.param_groups[0]
    assert group["initial_lr"] == 1.0 / 25 and group["min_lr"] == 1.0 / 25 / 1e4
    assert scheduler.get_last_lr() == [pytest.approx(0.04)] and group["momentum"] == pytest.approx(0.95)
    lrs, momenta = [0.04], [0.95]
    for _ in range(11):
        opt.step()
        scheduler.step()
        lrs.append(group["lr"])
        momenta.append(group["momentum"])
    # rise over steps 0..2 (pct_start·total - 1), fall over 2..11 (total - 1), momentum mirrored
    assert lrs[1] == pytest.approx(0.04 + 0.96 / 2) and lrs[2] == 1.0 and momenta[2] == pytest.approx(0.85)
    assert lrs[11] == pytest.approx(4e-6) and momenta[11] == pytest.approx(0.95)
    assert lrs[6] == pytest.approx(4e-6 + (1 - 4e-6) * (1 + math.cos(math.pi * 4 / 9)) / 2)
    opt.step()
    scheduler.step()  # step 12 = total_steps is allowed, as in PyTorch
    with pytest.raises(ValueError, match="tried to step 13 times; total_steps is 12"):
        scheduler.step()


def test_onecycle_cycles_adams_beta1_and_checks_arguments():
    opt = _opt((0.1,), optimizer=Adam, betas=(0.9, 0.99))
    lr_scheduler.OneCycleLR(opt, max_lr=0.01, epochs=2, steps_per_epoch=5)
    assert opt.param_groups[0]["betas"] == (0.95, 0.99)
    with pytest.raises(ValueError, match="give total_steps, or epochs and steps_per_epoch"):
        lr_scheduler.OneCycleLR(opt, max_lr=0.01)
    with pytest.raises(ValueError, match="anneal_strategy must be 'cos' or 'linear'"):
        lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=5, anneal_strategy="exp")
    with pytest.raises(ValueError, match="max_lr has 2 values but the optimizer has 1"):
        lr_scheduler.OneCycleLR(opt, max_lr=[0.1, 0.2], total_steps=5)
    with pytest.raises(ValueError, match="total_steps must be a positive integer, got 0"):
        lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=0)


def test_sequential_warmup_then_cosine():
    opt = _opt((1.0,))
    warmup = lr_scheduler.LinearLR(opt, start_factor=0.25, total_iters=2)
    cosine = lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    scheduler = lr_scheduler.SequentialLR(opt, [warmup, cosine], milestones=[2])
    values = _lrs(scheduler, 6)
    np.testing.assert_allclose(
        values, [0.25, 0.625, 1.0, 0.8535533905932737, 0.5, 0.14644660940672624, 0.0], atol=1e-15
    )


def test_scheduler_errors():
    opt = _opt()
    with pytest.raises(TypeError, match="expected an Optimizer"):
        lr_scheduler.StepLR(object(), step_size=2)
    with pytest.raises(ValueError, match="step_size must be a positive integer, got 0"):
        lr_scheduler.StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="start_factor must be in"):
        lr_scheduler.LinearLR(opt, start_factor=0.0)
    with pytest.raises(ValueError, match="T_max must be a positive integer"):
        lr_scheduler.CosineAnnealingLR(opt, T_max=0)
    first = lr_scheduler.StepLR(opt, step_size=2)
    with pytest.raises(ValueError, match="one milestone fewer than schedulers"):
        lr_scheduler.SequentialLR(opt, [first], milestones=[3])
    with pytest.raises(ValueError, match=r"schedulers\[0\] \(StepLR\) drives another optimizer"):
        lr_scheduler.SequentialLR(_opt(), [first], milestones=[])
    with pytest.raises(ValueError, match="unexpected keys"):
        lr_scheduler.CosineAnnealingLR(opt, T_max=3).load_state_dict(first.state_dict())


@pytest.mark.parametrize(
    "make",
    [
        lambda opt: lr_scheduler.MultiStepLR(opt, milestones=[2, 2, 5], gamma=0.5),
        lambda opt: lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=12, three_phase=True),
        lambda opt: lr_scheduler.SequentialLR(
            opt,
            [lr_scheduler.LinearLR(opt, total_iters=3), lr_scheduler.CosineAnnealingLR(opt, T_max=6)],
            milestones=[3],
        ),
    ],
    ids=["multistep", "onecycle", "sequential"],
)
def test_scheduler_state_dict_round_trip_through_json(make):
    opt = _opt((0.1, 0.3), momentum=0.9)
    scheduler = make(opt)
    reference = _lrs(scheduler, 10)
    opt2 = _opt((0.1, 0.3), momentum=0.9)
    scheduler2 = make(opt2)
    resumed = _lrs(scheduler2, 5)
    optimizer_state = _json_and_npz(opt2.state_dict())
    scheduler_state = json.loads(json.dumps(scheduler2.state_dict()))
    opt3 = _opt((0.1, 0.3), momentum=0.9)
    scheduler3 = make(opt3)
    opt3.load_state_dict(optimizer_state)
    scheduler3.load_state_dict(scheduler_state)
    resumed += _lrs(scheduler3, 5)[1:]
    assert resumed == reference
