"""Parity with torch.optim for RMSprop, Adagrad, Adadelta, Adamax, NAdam and RAdam (issue 16):
the same gradients into Kinone's and PyTorch's optimizers, step for step, as in
test_optim_parity.py (whose problem, gradients and comparisons these tests reuse).

float64 trajectories agree to rtol 1e-10 over 25 steps, float32 to rtol 1e-5; one parameter
gets no gradient every fourth step (both must skip it).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import kinone.optim as ko  # noqa: E402
from kinone.autograd import Tensor  # noqa: E402
from kinone.nn import Linear  # noqa: E402
from kinone.train.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402


def _load_beside(stem: str):
    """A test module beside this file (pytest runs with --import-mode=importlib: no sys.path)."""
    path = Path(__file__).with_name(f"{stem}.py")
    spec = importlib.util.spec_from_file_location(f"kinone_nn_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_base = _load_beside("test_optim_parity")
FIRST, REST, STEPS = _base.FIRST, _base.REST, _base.STEPS
_assert_params_match, _assert_state_matches, _case_id = (
    _base._assert_params_match,
    _base._assert_state_matches,
    _base._case_id,
)
_gradients, _groups, _problem = _base._gradients, _base._groups, _base._problem
_set_grads, _through_npz_and_json = _base._set_grads, _base._through_npz_and_json

CASES = [
    ("RMSprop", dict(), None),
    ("RMSprop", dict(lr=0.01, alpha=0.9, weight_decay=0.1), None),
    ("RMSprop", dict(lr=0.01, momentum=0.9), None),
    ("RMSprop", dict(lr=0.01, centered=True), None),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.05, maximize=True), None),
    ("RMSprop", dict(lr=0.01), [(FIRST, dict(momentum=0.9, lr=0.003)), (REST, dict(centered=True, alpha=0.5))]),
    ("Adagrad", dict(), None),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1), None),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.5, eps=1e-3, maximize=True), None),
    ("Adagrad", dict(lr=0.1), [(FIRST, dict(lr_decay=0.1)), (REST, dict(lr=0.3, weight_decay=0.01))]),
    ("Adadelta", dict(), None),
    ("Adadelta", dict(lr=0.5, rho=0.5, eps=1e-4, weight_decay=0.1), None),
    ("Adadelta", dict(maximize=True), None),
    ("Adadelta", dict(), [(FIRST, dict(lr=2.0)), (REST, dict(rho=0.99, weight_decay=0.01))]),
    ("Adamax", dict(), None),
    ("Adamax", dict(lr=0.01, betas=(0.3, 0.5), weight_decay=0.1), None),  # lerp weight >= 0.5 branch
    ("Adamax", dict(lr=0.01, eps=1e-3, maximize=True), None),
    ("Adamax", dict(lr=0.01), [(FIRST, dict(lr=0.03)), (REST, dict(betas=(0.8, 0.99), weight_decay=0.1))]),
    ("NAdam", dict(), None),
    ("NAdam", dict(lr=0.01, weight_decay=0.1), None),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True), None),
    ("NAdam", dict(lr=0.01, momentum_decay=0.1, betas=(0.3, 0.9), maximize=True), None),
    ("NAdam", dict(lr=0.01), [(FIRST, dict(momentum_decay=0.01)), (REST, dict(lr=0.03, weight_decay=0.05))]),
    ("RAdam", dict(), None),  # rho_t passes 5 at step 6: both branches
    ("RAdam", dict(lr=0.01, weight_decay=0.1), None),
    ("RAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True), None),
    ("RAdam", dict(lr=0.01, betas=(0.5, 0.9)), None),
    ("RAdam", dict(lr=0.01), [(FIRST, dict(betas=(0.8, 0.99))), (REST, dict(lr=0.03, weight_decay=0.05))]),
]


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


RESUME_CASES = [CASES[4], CASES[9], CASES[13], CASES[17], CASES[20], CASES[22], CASES[25], CASES[27]]


@pytest.mark.parametrize("case", RESUME_CASES, ids=[_case_id(c) for c in RESUME_CASES])
def test_resumed_run_matches_uninterrupted_torch_run(case):
    """12 steps, a state dict through .npz + JSON into a new optimizer, 13 more steps: the same
    steps as PyTorch's uninterrupted run."""
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


LAYOUT_CASES = [
    ("RMSprop", dict(momentum=0.9, centered=True)),
    ("Adagrad", dict(lr_decay=0.1)),
    ("Adadelta", dict()),
    ("Adamax", dict()),
    ("NAdam", dict(decoupled_weight_decay=True)),
    ("RAdam", dict()),
]
# Options PyTorch has and Kinone does not take (implementation switches, not the algorithm).
TORCH_ONLY_OPTIONS = {"foreach", "capturable", "differentiable", "fused"}


@pytest.mark.parametrize("name, options", LAYOUT_CASES, ids=[name for name, _ in LAYOUT_CASES])
def test_state_dict_layout_matches_torch(name, options):
    """Same parameter numbering, same state names, same group options and values (less
    PyTorch's implementation switches). Adagrad has state for every parameter from the start."""
    _, _, initial = _problem(np.float64)
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
    for group, torch_group in zip(ours["param_groups"], theirs["param_groups"], strict=True):
        expected = {k: list(v) if isinstance(v, tuple) else v for k, v in torch_group.items()}
        assert group == {k: v for k, v in expected.items() if k not in TORCH_ONLY_OPTIONS}
    assert ours["state"].keys() == theirs["state"].keys()
    for index in ours["state"]:
        assert ours["state"][index].keys() == theirs["state"][index].keys()


@pytest.mark.parametrize("name", ["RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam"])
def test_a_checkpoint_resumes_the_optimizer(name, tmp_path):
    """Through kinone.train's checkpoint file (npz + JSON metadata, no pickle): the resumed
    optimizer takes the same steps as the one never saved."""
    rng = np.random.default_rng(3)
    models = [Linear(3, 2), Linear(3, 2)]
    models[1].load_state_dict(models[0].state_dict())
    optimizers = [getattr(ko, name)(model.parameters(), lr=0.01) for model in models]

    def step_all(step):
        grads = [rng.standard_normal(p.shape).astype(np.float32) for p in models[0].parameters()]
        for model, opt in zip(models, optimizers):
            for p, g in zip(model.parameters(), grads):
                p.grad = Tensor(g.copy())
            opt.step()

    for step in range(3):
        step_all(step)
    save_checkpoint(tmp_path / "ckpt.npz", models[1], optimizers[1])
    models[1] = Linear(3, 2)
    optimizers[1] = getattr(ko, name)(models[1].parameters(), lr=0.01)
    load_checkpoint(tmp_path / "ckpt.npz", models[1], optimizers[1], restore_rng=False)
    for step in range(3, 6):
        step_all(step)
    for (key, ours), (_, theirs) in zip(models[0].state_dict().items(), models[1].state_dict().items()):
        assert np.array_equal(ours, theirs), key
