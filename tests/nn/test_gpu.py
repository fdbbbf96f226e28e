"""On a real GPU (CuPy and a CUDA device; skipped otherwise, so never in CI): every Function of
kinone.autograd and kinone.nn against the CPU, gradcheck in float64 on the GPU, a ResNet-18 and
an EfficientNet-B0 training step against the CPU, determinism, and files across devices.

Run by benchmarks/gpu/run.sh on a lent GPU machine. `KINONE_GPU_TESTS_ON_STANDIN=1` runs the
same tests on the stand-in device instead (a dry run of this file on any machine)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from kinone import models, nn, optim
from kinone.autograd import Tensor, backend, gradcheck, manual_seed
from kinone.autograd.testing import device_parity
from kinone.nn import functional as F

STANDIN = os.environ.get("KINONE_GPU_TESTS_ON_STANDIN") == "1"


def _real_gpu() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no CuPy, no driver, no device
        return False


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not STANDIN and not _real_gpu(), reason="needs CuPy and a CUDA device"),
]


@pytest.fixture(autouse=True)
def cuda_device():
    with backend.use_standin_cuda() if STANDIN else contextlib.nullcontext():
        yield


def _cases(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CASES


HERE = Path(__file__).parent
CASES = [
    *_cases(HERE.parent / "autograd" / "test_gradcheck.py", "gpu_autograd_samples"),
    *_cases(HERE / "test_gradcheck.py", "gpu_nn_samples"),
]
IDS = [f"{cls.__name__}-{i}" for cls, i, _ in CASES]


def _float32(inputs):
    return [x.astype(np.float32) if isinstance(x, np.ndarray) and x.dtype == np.float64 else x for x in inputs]


@pytest.mark.parametrize("function, sample", [(cls, s) for cls, _, s in CASES], ids=IDS)
def test_function_float32_on_the_gpu_matches_the_cpu(function, sample):
    if function.__name__ == "Dropout" and not STANDIN:
        pytest.skip("CuPy's generator draws other numbers than NumPy's (the float64 gradcheck covers Dropout)")
    device_parity(sample[0], _float32(sample[1]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("function, sample", [(cls, s) for cls, _, s in CASES], ids=IDS)
def test_gradcheck_float64_on_the_gpu(function, sample):
    fn, inputs, options = sample if len(sample) == 3 else (*sample, {})
    cuda = backend.Device("cuda")
    tensors = [
        Tensor(backend.to_device(np.array(x, copy=True), cuda), requires_grad=x.dtype.kind == "f")
        if isinstance(x, np.ndarray)
        else x
        for x in inputs
    ]
    assert gradcheck(fn, tensors, **options)


def _step(name: str, device: str, steps: int = 1, size: int = 64, batch: int = 4, deterministic: bool = False):
    """`deterministic`: no dropout or stochastic depth, whose draws differ between the CPU's and
    the device's generators."""
    manual_seed(0)
    options = (
        {"dropout": 0.0, "stochastic_depth_prob": 0.0} if deterministic and name.startswith("efficientnet") else {}
    )
    model = models.get_model(name, num_classes=14, in_channels=1, **options).to(device)
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(1)
    losses = []
    for _ in range(steps):
        x = Tensor(rng.standard_normal((batch, 1, size, size)).astype(np.float32)).to(device)
        y = Tensor((rng.random((batch, 14)) < 0.3).astype(np.float32)).to(device)
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, model.state_dict()


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0"])
def test_a_training_step_on_the_gpu_matches_the_cpu(name):
    cpu_losses, cpu_state = _step(name, "cpu", deterministic=True)
    gpu_losses, gpu_state = _step(name, "cuda", deterministic=True)
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-4)
    for key in cpu_state:
        assert isinstance(gpu_state[key], np.ndarray), f"state_dict()[{key!r}] is not a host array"
        np.testing.assert_allclose(gpu_state[key], cpu_state[key], rtol=1e-3, atol=1e-5, err_msg=key)


def test_two_gpu_runs_are_bit_identical():
    first = _step("efficientnet_b0", "cuda", steps=3)  # dropout and stochastic depth draw on the device
    second = _step("efficientnet_b0", "cuda", steps=3)
    assert first[0] == second[0]
    for key in first[1]:
        np.testing.assert_array_equal(first[1][key], second[1][key], err_msg=key)


def test_save_on_the_gpu_and_load_on_the_cpu(tmp_path):
    manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).cuda()
    model(Tensor(np.ones((2, 1, 6, 6), np.float32)).cuda())  # running statistics change on the device
    nn.save(model.state_dict(), tmp_path / "w.npz")
    manual_seed(1)
    cpu = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    cpu.load_state_dict(nn.load(tmp_path / "w.npz"))
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(cpu.state_dict()[key], value)
    back = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).cuda()
    back.load_state_dict(nn.load(tmp_path / "w.npz"))
    assert all(p.device.type == "cuda" for p in back.parameters())
