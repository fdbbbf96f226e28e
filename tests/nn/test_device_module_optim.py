"""Modules, state dicts, optimizers, schedulers, init and checkpoints on the stand-in CUDA
device (issue 13): `Module.to` moves in place, files hold host arrays, an optimizer's state
lives on its parameters' device, and the same steps give the CPU's weights bit for bit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kinone import nn, optim
from kinone.autograd import Tensor, backend, default_generator, manual_seed
from kinone.models.efficientnet import stochastic_depth
from kinone.nn import init
from kinone.train.checkpoint import load_checkpoint, save_checkpoint

CUDA = backend.Device("cuda:0")


# What cupy.random.Generator offers (CuPy 14, cupy/random/_generator_api.pyx): no `normal`.
CUPY_GENERATOR_METHODS = {
    "random",
    "uniform",
    "integers",
    "beta",
    "chisquare",
    "dirichlet",
    "exponential",
    "f",
    "geometric",
    "hypergeometric",
    "logseries",
    "standard_exponential",
    "poisson",
    "power",
    "standard_normal",
    "gamma",
    "standard_gamma",
    "binomial",
}


def _real_gpu() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no CuPy, no driver, no device
        return False


@pytest.fixture(autouse=True)
def standin_cuda(monkeypatch, request):
    """The stand-in device, made as strict as CuPy in two more ways: `device_array[...] =
    host_array` raises (CuPy refuses assignment from CPU arrays, gh-2079), and its generator
    has only CuPy's methods. Tests marked `gpu` run on the real device instead."""
    from kinone.autograd import standin

    if request.node.get_closest_marker("gpu") is not None:
        yield
        return

    setitem, getattr_ = standin.ndarray.__setitem__, standin._Generator.__getattr__

    def strict_setitem(self, key, value):
        if isinstance(value, np.ndarray) and value.ndim > 0:
            raise TypeError("stand-in CUDA: assignment from a host (NumPy) array is refused, as by CuPy")
        setitem(self, key, value)

    def strict_getattr(self, name):
        if name not in CUPY_GENERATOR_METHODS:
            raise AttributeError(f"cupy.random.Generator has no method {name!r}")
        return getattr_(self, name)

    monkeypatch.setattr(standin.ndarray, "__setitem__", strict_setitem)
    monkeypatch.setattr(standin._Generator, "__getattr__", strict_getattr)
    with backend.use_standin_cuda():
        yield


def small_model(seed: int = 0) -> nn.Module:
    """Linear -> BatchNorm1d -> Linear, weights drawn from `seed` (CPU)."""
    manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def host(array) -> np.ndarray:
    return backend.to_host(array)


def assert_on(tensor, device) -> None:
    assert tensor.device == device
    expected = np.ndarray if backend.Device(device).type == "cpu" else backend.cuda_module().ndarray
    assert isinstance(tensor.data, expected)


def set_gradients(model: nn.Module, step: int) -> None:
    """The same gradients for every copy of the model, on each parameter's device."""
    rng = np.random.default_rng(100 + step)
    for p in model.parameters():
        grad = rng.standard_normal(p.shape).astype(p.dtype)
        p.grad = Tensor(backend.to_device(grad, p.device))


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    for (key, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert np.array_equal(x, y), key


# ---------------------------------------------------------------------------- Module.to
def test_module_to_moves_parameters_buffers_and_gradients_in_place():
    model = small_model()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    params, buffers = list(model.parameters()), list(model.buffers())
    set_gradients(model, 0)
    grads = [host(p.grad.data) for p in params]
    versions = [p._version for p in params]

    assert model.to("cuda") is model
    assert list(model.parameters()) == params and all(a is b for a, b in zip(model.parameters(), params))
    assert all(a is b for a, b in zip(model.buffers(), buffers))
    for p, grad, version in zip(params, grads, versions):
        assert_on(p, CUDA)
        assert_on(p.grad, CUDA)
        assert np.array_equal(host(p.grad.data), grad)
        assert p._version > version  # a graph recorded before the move cannot backward
    for b in buffers:
        assert_on(b, CUDA)
    assert model[1].num_batches_tracked.dtype == np.int64
    assert_same_state(model.state_dict(), before)

    assert model.cpu() is model
    for t in params + buffers:
        assert_on(t, "cpu")
    assert_same_state(model.state_dict(), before)


def assert_same_state(state: dict, expected: dict) -> None:
    assert list(state) == list(expected)
    for key in expected:
        assert type(state[key]) is np.ndarray, key
        assert state[key].dtype == expected[key].dtype and np.array_equal(state[key], expected[key]), key


def test_module_cuda_shorthands_and_device_dtype_together():
    model = small_model()
    assert model.cuda(0) is model and model[0].weight.device == CUDA
    model.cpu().cuda()
    assert model[0].weight.device == CUDA
    model.to(np.float64)  # a cast keeps the device
    assert_on(model[0].weight, CUDA)
    assert model[0].weight.dtype == np.float64
    model.to("cpu", np.float32)
    assert_on(model[0].weight, "cpu")
    assert model[0].weight.dtype == np.float32
    assert model[1].num_batches_tracked.dtype == np.int64  # not floating: never cast
    model.to(Tensor(np.zeros(1, np.float64)).to("cuda"))  # to(tensor): its device and dtype
    assert_on(model[3].bias, CUDA)
    assert model[3].bias.dtype == np.float64


def test_a_moved_module_trains_on_the_device():
    model = small_model().to("cuda")
    x = Tensor(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)).to("cuda")
    model(x).sum().backward()
    for p in model.parameters():
        assert_on(p.grad, CUDA)
    assert_on(model[1].running_mean, CUDA)


# ---------------------------------------------------------------------------- state dicts and files
def test_state_dict_of_a_device_module_is_host_numpy_and_a_snapshot():
    model = small_model().to("cuda")
    state = model.state_dict()
    assert all(type(v) is np.ndarray for v in state.values())
    state["0.weight"][...] = 7.0
    assert not np.any(host(model[0].weight.data) == 7.0)
    assert all(isinstance(v, Tensor) and v.device == CUDA for v in model.state_dict(keep_vars=True).values())


def test_load_state_dict_copies_onto_each_tensors_device():
    source = small_model(seed=1)
    model = small_model(seed=2).to("cuda")
    weight = model[0].weight
    model.load_state_dict(source.state_dict())
    assert model[0].weight is weight
    for t in list(model.parameters()) + list(model.buffers()):
        assert_on(t, CUDA)
    assert_same_weights(model, source)
    # and from Tensors on the device into a CPU model
    back = small_model(seed=3)
    back.load_state_dict(model.state_dict(keep_vars=True))
    assert_on(back[0].weight, "cpu")
    assert_same_weights(back, source)


def test_save_on_cuda_load_on_cpu_and_back(tmp_path):
    model = small_model(seed=1).to("cuda")
    nn.save(model.state_dict(keep_vars=True), tmp_path / "cuda.npz")  # Tensors on the device
    loaded = nn.load(tmp_path / "cuda.npz")
    assert all(type(v) is np.ndarray for v in loaded.values())
    cpu_model = small_model(seed=2)
    cpu_model.load_state_dict(loaded)
    assert_same_weights(cpu_model, model)

    nn.save(cpu_model.state_dict(), tmp_path / "cpu.npz")
    cuda_model = small_model(seed=3).cuda()
    cuda_model.load_state_dict(nn.load(tmp_path / "cpu.npz"))
    assert_on(cuda_model[3].weight, CUDA)
    assert_same_weights(cuda_model, cpu_model)


# ---------------------------------------------------------------------------- optimizers
OPTIMIZERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.1),
    "sgd_momentum_weight_decay": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-2),
    "sgd_nesterov": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    "sgd_dampening_maximize": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.5, maximize=True),
    "adam": lambda ps: optim.Adam(ps, lr=1e-2),
    "adam_amsgrad_l2": lambda ps: optim.Adam(ps, lr=1e-2, weight_decay=1e-2, amsgrad=True),
    "adam_maximize": lambda ps: optim.Adam(ps, lr=1e-2, betas=(0.3, 0.9), maximize=True),
    "adamw": lambda ps: optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
}


def state_arrays(optimizer):
    return [v for state in optimizer.state.values() for v in state.values() if not isinstance(v, (int, float))]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_an_optimizer_made_before_the_move_steps_on_the_device_as_on_the_cpu(name):
    cpu_model, cuda_model = small_model(), small_model()
    cpu_opt = OPTIMIZERS[name](list(cpu_model.parameters()))
    cuda_opt = OPTIMIZERS[name](list(cuda_model.parameters()))
    cuda_model.to("cuda")  # after the optimizer was built
    for step in range(3):
        for model, opt in ((cpu_model, cpu_opt), (cuda_model, cuda_opt)):
            set_gradients(model, step)
            opt.step()
    for p in cuda_model.parameters():
        assert_on(p, CUDA)
    assert all(isinstance(v, backend.cuda_module().ndarray) for v in state_arrays(cuda_opt))
    assert state_arrays(cuda_opt) or name == "sgd"  # plain SGD keeps no state
    assert_same_weights(cuda_model, cpu_model)


@pytest.mark.parametrize("name", ["sgd_momentum_weight_decay", "adam_amsgrad_l2"])
def test_optimizer_state_follows_a_parameter_moved_after_some_steps(name):
    cpu_model, moved_model = small_model(), small_model()
    cpu_opt = OPTIMIZERS[name](list(cpu_model.parameters()))
    moved_opt = OPTIMIZERS[name](list(moved_model.parameters()))
    for step in range(4):
        if step == 2:
            moved_model.to("cuda")
        for model, opt in ((cpu_model, cpu_opt), (moved_model, moved_opt)):
            set_gradients(model, step)
            opt.step()
    assert all(isinstance(v, backend.cuda_module().ndarray) for v in state_arrays(moved_opt))
    assert_same_weights(moved_model, cpu_model)


def test_a_gradient_on_another_device_is_a_clear_error():
    model = small_model().to("cuda")
    opt = optim.SGD(model.parameters(), lr=0.1)
    set_gradients(model, 0)
    model[0].weight.grad = Tensor(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"SGD: a parameter of shape \(4, 3\) on cuda:0 has a gradient on cpu"):
        opt.step()


@pytest.mark.parametrize("name", ["sgd_momentum_weight_decay", "adam_amsgrad_l2", "adamw"])
def test_optimizer_state_dict_is_host_and_loads_onto_either_device(name):
    cuda_model = small_model().to("cuda")
    cuda_opt = OPTIMIZERS[name](list(cuda_model.parameters()))
    for step in range(2):
        set_gradients(cuda_model, step)
        cuda_opt.step()
    saved = cuda_opt.state_dict()
    assert state_arrays_of(saved) and all(type(v) is np.ndarray for v in state_arrays_of(saved))

    cpu_model = small_model()
    cpu_model.load_state_dict(cuda_model.state_dict())
    cpu_opt = OPTIMIZERS[name](list(cpu_model.parameters()))
    cpu_opt.load_state_dict(saved)
    assert all(type(v) is np.ndarray for v in state_arrays(cpu_opt))

    again = small_model().to("cuda")
    again.load_state_dict(cpu_model.state_dict())
    again_opt = OPTIMIZERS[name](list(again.parameters()))
    again_opt.load_state_dict(cpu_opt.state_dict())
    assert all(isinstance(v, backend.cuda_module().ndarray) for v in state_arrays(again_opt))

    for step in range(2, 4):
        for model, opt in ((cuda_model, cuda_opt), (cpu_model, cpu_opt), (again, again_opt)):
            set_gradients(model, step)
            opt.step()
    assert_same_weights(cpu_model, cuda_model)
    assert_same_weights(again, cuda_model)


def state_arrays_of(state_dict):
    return [v for state in state_dict["state"].values() for v in state.values() if not isinstance(v, (int, float))]


# ---------------------------------------------------------------------------- schedulers
def test_schedulers_drive_an_optimizer_on_the_device():
    cpu_model, cuda_model = small_model(), small_model().to("cuda")
    runs = []
    for model in (cpu_model, cuda_model):
        opt = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        warmup = optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=2)
        cosine = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
        runs.append((model, opt, warmup, cosine))
    for step in range(4):
        for model, opt, warmup, cosine in runs:
            set_gradients(model, step)
            opt.step()
            warmup.step()
            cosine.step()
    assert runs[0][1].param_groups[0]["lr"] == runs[1][1].param_groups[0]["lr"]
    json.dumps(runs[1][3].state_dict())  # still plain Python values
    assert_same_weights(cuda_model, cpu_model)


# ---------------------------------------------------------------------------- init
INITS = [
    lambda t: init.uniform_(t, -0.5, 0.5),
    lambda t: init.normal_(t, 0.1, 2.0),
    lambda t: init.trunc_normal_(t, 0.0, 1.0, -0.5, 0.5),
    lambda t: init.constant_(t, 0.25),
    init.zeros_,
    init.ones_,
    init.xavier_uniform_,
    init.xavier_normal_,
    lambda t: init.kaiming_uniform_(t, a=0.1),
    lambda t: init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"),
]


@pytest.mark.parametrize("fill", INITS, ids=range(len(INITS)))
def test_init_fills_on_the_tensors_device(fill):
    cpu, cuda = nn.Parameter(np.zeros((6, 5), np.float32)), nn.Parameter(np.zeros((6, 5), np.float32)).to("cuda")
    cuda = nn.Parameter(cuda)
    version = cuda._version
    manual_seed(3)
    assert fill(cpu) is cpu
    manual_seed(3)  # the stand-in's generator is NumPy's, seeded alike: the same draws as the CPU's
    assert fill(cuda) is cuda
    assert_on(cuda, CUDA)
    assert cuda.dtype == np.float32 and cuda._version > version
    assert np.array_equal(host(cuda.data), cpu.data)


def test_normal_init_on_the_cpu_draws_numpys_normal_numbers():
    t = nn.Parameter(np.zeros((50, 40), np.float64))
    manual_seed(7)
    init.normal_(t, 0.5, 3.0)
    assert np.array_equal(t.data, np.random.default_rng(7).normal(0.5, 3.0, (50, 40)))
    manual_seed(7)
    init.trunc_normal_(t, 0.0, 1.0, -1.0, 1.0)
    rng = np.random.default_rng(7)
    expected = rng.normal(0.0, 1.0, (50, 40))
    outside = (expected < -1) | (expected > 1)
    while outside.any():
        expected[outside] = rng.normal(0.0, 1.0, int(outside.sum()))
        outside = (expected < -1) | (expected > 1)
    assert np.array_equal(t.data, expected)


def test_stochastic_depth_draws_its_mask_on_the_inputs_device():
    x = Tensor(np.ones((64, 3), np.float32), requires_grad=True)
    manual_seed(5)
    y = stochastic_depth(x.to("cuda"), 0.5, "row")
    assert y.device == CUDA
    manual_seed(5)
    expected = (default_generator().random((64, 1)) < 0.5) * 2.0
    assert np.array_equal(host(y.data), np.broadcast_to(expected, (64, 3)))


# ---------------------------------------------------------------------------- checkpoints
def test_checkpoint_saved_on_cuda_resumes_on_the_cpu_and_back(tmp_path):
    def trio(model):
        opt = optim.AdamW(model.parameters(), lr=1e-2)
        return model, opt, optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)

    cuda_run = trio(small_model(seed=1).to("cuda"))
    for step in range(2):
        set_gradients(cuda_run[0], step)
        cuda_run[1].step()
        cuda_run[2].step()
    save_checkpoint(tmp_path / "cuda.npz", *cuda_run, epoch=1)

    cpu_run = trio(small_model(seed=9))
    assert load_checkpoint(tmp_path / "cuda.npz", *cpu_run) == {"epoch": 1}
    assert all(type(v) is np.ndarray for v in state_arrays(cpu_run[1]))
    assert_same_weights(cpu_run[0], cuda_run[0])
    save_checkpoint(tmp_path / "cpu.npz", *cpu_run, epoch=1)

    back_run = trio(small_model(seed=8).cuda())
    load_checkpoint(tmp_path / "cpu.npz", *back_run)
    assert_on(back_run[0][0].weight, CUDA)
    assert all(isinstance(v, backend.cuda_module().ndarray) for v in state_arrays(back_run[1]))

    for step in range(2, 4):
        for model, opt, scheduler in (cuda_run, cpu_run, back_run):
            set_gradients(model, step)
            opt.step()
            scheduler.step()
    assert_same_weights(cpu_run[0], cuda_run[0])
    assert_same_weights(back_run[0], cuda_run[0])


def test_the_fused_cupy_kernels_are_for_real_cupy_only():
    """The stand-in (and the CPU) run the neutral ufunc path, which the tests above check."""
    from kinone.optim import _fused_cuda

    assert not _fused_cuda.applies(np.zeros(3, np.float32))
    assert not _fused_cuda.applies(backend.to_device(np.zeros(3, np.float32), CUDA))


@pytest.mark.gpu
@pytest.mark.skipif(not _real_gpu(), reason="needs CuPy and a CUDA device")
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_the_fused_cupy_update_gives_the_cpus_weights(name):
    """On a real GPU the optimizers take the fused kernels of `_fused_cuda.py`; from the same
    gradients they must give the CPU's float32 weights bit for bit (same operations in the same
    order, no multiply-add contraction). Run by benchmarks/gpu/run.sh, never in CI."""
    cpu_model, gpu_model = small_model(), small_model().to("cuda")
    cpu_opt = OPTIMIZERS[name](list(cpu_model.parameters()))
    gpu_opt = OPTIMIZERS[name](list(gpu_model.parameters()))
    for step in range(3):
        for model, opt in ((cpu_model, cpu_opt), (gpu_model, gpu_opt)):
            set_gradients(model, step)
            opt.step()
    for (key, x), (_, y) in zip(cpu_model.state_dict().items(), gpu_model.state_dict().items(), strict=True):
        assert np.array_equal(x, y), f"{name}: {key} differs from the CPU's by up to {np.abs(x - y).max()}"
