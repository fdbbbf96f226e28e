"""RMSprop, Adagrad, Adadelta, Adamax, NAdam and RAdam without PyTorch (issue 16): first steps
by their formulas, version counters, the stand-in CUDA device, option errors. Their parity
with torch.optim, step for step, is in test_optim_parity_more.py."""

from __future__ import annotations

import numpy as np
import pytest

from kinone import nn, optim
from kinone.autograd import Tensor, backend, manual_seed

OPTIMIZERS = {
    "rmsprop": lambda ps: optim.RMSprop(ps, lr=0.01),
    "rmsprop_momentum_centered_l2": lambda ps: optim.RMSprop(
        ps, lr=0.01, momentum=0.9, centered=True, weight_decay=0.1
    ),
    "adagrad": lambda ps: optim.Adagrad(ps, lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1),
    "adadelta": lambda ps: optim.Adadelta(ps, weight_decay=0.01, maximize=True),
    "adamax": lambda ps: optim.Adamax(ps, weight_decay=0.01),
    "nadam": lambda ps: optim.NAdam(ps, weight_decay=0.01),
    "nadamw": lambda ps: optim.NAdam(ps, weight_decay=0.01, decoupled_weight_decay=True),
    "radam": lambda ps: optim.RAdam(ps, lr=0.01),
    "radamw_maximize": lambda ps: optim.RAdam(ps, weight_decay=0.1, decoupled_weight_decay=True, maximize=True),
}


def _param(values):
    return Tensor(np.array(values, dtype=np.float64), requires_grad=True)


def _step(opt, p, grad):
    p.grad = Tensor(np.array(grad, dtype=np.float64))
    opt.step()


# ---------------------------------------------------------------------------- first steps by formula
def test_rmsprop_first_step():
    p = _param([1.0, -2.0])
    _step(optim.RMSprop([p], lr=0.01, alpha=0.9), p, [0.5, -4.0])
    g = np.array([0.5, -4.0])
    np.testing.assert_allclose(p.data, [1.0, -2.0] - 0.01 * g / (np.sqrt(0.1 * g * g) + 1e-8), rtol=1e-14)


def test_rmsprop_centered_subtracts_the_squared_mean_gradient():
    p = _param([1.0])
    opt = optim.RMSprop([p], lr=0.1, alpha=0.5, centered=True, eps=0.0)
    _step(opt, p, [2.0])
    _step(opt, p, [2.0])
    # v = 0.5·4 + 0.5·4·0.5 = 3, g_avg = 1.5: step 0.1·2/√(3 - 2.25)
    step_one = 0.1 * 2.0 / np.sqrt(2.0 - 1.0)
    np.testing.assert_allclose(p.data, [1.0 - step_one - 0.1 * 2.0 / np.sqrt(0.75)], rtol=1e-14)


def test_adagrad_has_state_from_the_start_and_decays_its_lr():
    p = _param([1.0])
    opt = optim.Adagrad([p], lr=1.0, lr_decay=1.0, initial_accumulator_value=3.0, eps=0.0)
    assert opt.state_dict()["state"] == {0: {"step": 0, "sum": np.array([3.0])}}
    _step(opt, p, [1.0])  # sum 4, lr 1: p -= 1/2
    _step(opt, p, [1.0])  # sum 5, lr 1/2: p -= 0.5/√5
    np.testing.assert_allclose(p.data, [1.0 - 0.5 - 0.5 / np.sqrt(5.0)], rtol=1e-14)


def test_adadelta_first_step():
    p = _param([1.0])
    _step(optim.Adadelta([p], lr=1.0, rho=0.9, eps=1e-6), p, [2.0])
    np.testing.assert_allclose(p.data, [1.0 - np.sqrt(1e-6) / np.sqrt(0.1 * 4.0 + 1e-6) * 2.0], rtol=1e-14)


def test_adamax_divides_by_the_largest_recent_gradient():
    p = _param([0.0])
    opt = optim.Adamax([p], lr=0.1, betas=(0.0, 0.5), eps=0.0)
    _step(opt, p, [4.0])  # m = 4, u = 4
    _step(opt, p, [1.0])  # m = 1, u = max(2, 1) = 2
    np.testing.assert_allclose(p.data, [-0.1 - 0.1 * 1.0 / 2.0], rtol=1e-14)


def test_nadam_first_step():
    p = _param([0.0])
    _step(optim.NAdam([p], lr=0.1, eps=0.0), p, [2.0])
    mu1, mu2 = 0.9 * (1 - 0.5 * 0.96**0.004), 0.9 * (1 - 0.5 * 0.96**0.008)
    mu_product = float(np.float32(mu1))  # PyTorch's float32 mu_product
    denom = np.sqrt(0.001 * 4.0 / 0.001)
    expected = -0.1 * (1 - mu1) / (1 - mu_product) * 2.0 / denom - 0.1 * mu2 / (1 - mu_product * mu2) * 0.2 / denom
    np.testing.assert_allclose(p.data, [expected], rtol=1e-12)


def test_radam_is_sgd_with_momentum_until_its_variance_is_tractable():
    p = _param([0.0])
    opt = optim.RAdam([p], lr=0.1)
    for _ in range(5):  # ρ_t ≤ 5 for t ≤ 5 with β2 = 0.999: p ← p - γ·m̂, m̂ = 1 for a constant g = 1
        _step(opt, p, [1.0])
    np.testing.assert_allclose(p.data, [-0.5], rtol=1e-12)
    _step(opt, p, [1.0])  # now rectified and adaptive: a step of γ·r·√(1-β2^6)/(√v + ε), r < 1
    assert -0.5 - 0.1 < p.data[0] < -0.5


# ---------------------------------------------------------------------------- in place, versions
def _layer_and_input():
    manual_seed(0)
    layer = nn.Linear(4, 3)
    x = Tensor(np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32), requires_grad=True)
    return layer, x


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_step_updates_in_place_and_bumps_the_version_of_each_parameter_it_updates(name):
    layer, x = _layer_and_input()
    frozen = nn.Parameter(np.ones(2, dtype=np.float32))  # no gradient: skipped, not bumped
    optimizer = OPTIMIZERS[name](list(layer.parameters()) + [frozen])
    weight_array, weight_version = layer.weight.data, layer.weight._version
    for step in (1, 2):
        optimizer.zero_grad()
        layer(x).sum().backward()
        before = layer.weight.data.copy()
        optimizer.step()
        assert layer.weight._version == weight_version + step
        assert layer.weight.data is weight_array and weight_array.dtype == np.float32
        assert not np.array_equal(layer.weight.data, before)
        assert frozen._version == 0
        assert (frozen in optimizer.state) == name.startswith("adagrad")  # Adagrad's state is made up front
    loss = layer(x).sum()  # recorded at the current version
    optimizer.step()
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()


# ---------------------------------------------------------------------------- the stand-in device
def _model(seed=0):
    manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def _set_gradients(model, step):
    rng = np.random.default_rng(100 + step)
    for p in model.parameters():
        p.grad = Tensor(backend.to_device(rng.standard_normal(p.shape).astype(p.dtype), p.device))


def _state_arrays(states):
    return [v for state in states for v in state.values() if not isinstance(v, (int, float))]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_on_the_standin_device_the_steps_are_the_cpus_and_the_state_saves_to_the_host(name):
    with backend.use_standin_cuda():
        cpu_model, cuda_model = _model(), _model()
        cpu_opt = OPTIMIZERS[name](list(cpu_model.parameters()))
        cuda_opt = OPTIMIZERS[name](list(cuda_model.parameters()))
        cuda_model.to("cuda")  # after the optimizer was built: its state follows at the next step
        for step in range(3):
            for model, opt in ((cpu_model, cpu_opt), (cuda_model, cuda_opt)):
                _set_gradients(model, step)
                opt.step()
        device_arrays = _state_arrays(cuda_opt.state.values())
        assert device_arrays and all(isinstance(v, backend.cuda_module().ndarray) for v in device_arrays)
        saved = cuda_opt.state_dict()
        assert all(type(v) is np.ndarray for v in _state_arrays(saved["state"].values()))

        again = _model().to("cuda")
        again.load_state_dict(cuda_model.state_dict())
        again_opt = OPTIMIZERS[name](list(again.parameters()))
        again_opt.load_state_dict(saved)
        for step in range(3, 5):
            for model, opt in ((cpu_model, cpu_opt), (cuda_model, cuda_opt), (again, again_opt)):
                _set_gradients(model, step)
                opt.step()
        for other in (cuda_model, again):
            for (key, x), (_, y) in zip(cpu_model.state_dict().items(), other.state_dict().items(), strict=True):
                assert np.array_equal(x, y), key


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda ps: optim.RMSprop(ps, alpha=-0.1), r"RMSprop: invalid alpha -0.1; expected a number >= 0.0"),
        (lambda ps: optim.RMSprop(ps, momentum=-1), r"RMSprop: invalid momentum -1; expected a number >= 0.0"),
        (lambda ps: optim.Adagrad(ps, lr_decay=-1), r"Adagrad: invalid lr_decay -1; expected a number >= 0.0"),
        (
            lambda ps: optim.Adagrad(ps, initial_accumulator_value=-1),
            r"Adagrad: invalid initial_accumulator_value -1; expected a number >= 0.0",
        ),
        (lambda ps: optim.Adadelta(ps, rho=1.5), r"Adadelta: invalid rho 1.5; expected a number in \[0.0, 1.0\]"),
        (lambda ps: optim.Adamax(ps, betas=(0.9, 1.0)), r"Adamax: invalid betas\[1\] 1.0; expected a number in"),
        (lambda ps: optim.NAdam(ps, momentum_decay=-1), r"NAdam: invalid momentum_decay -1; expected a number >= 0"),
        (lambda ps: optim.RAdam(ps, betas=(0.9,)), r"RAdam: invalid betas \(0.9,\); expected a pair"),
        (lambda ps: optim.RAdam(ps, eps=-1e-8), r"RAdam: invalid eps -1e-08; expected a number >= 0.0"),
    ],
)
def test_invalid_options_name_the_optimizer_option_and_value(make, message):
    with pytest.raises(ValueError, match=message):
        make([_param([1.0])])
