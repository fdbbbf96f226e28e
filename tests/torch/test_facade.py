"""kinone.torch is Kinone under PyTorch's names: the imports a PyTorch script writes work, and
each name is Kinone's own object (one implementation)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import kinone.autograd
import kinone.data
import kinone.nn
import kinone.optim


def test_the_imports_of_a_pytorch_script():
    torch = importlib.import_module("kinone.torch")
    nn = importlib.import_module("kinone.torch.nn")
    functional = importlib.import_module("kinone.torch.nn.functional")
    optim = importlib.import_module("kinone.torch.optim")
    lr_scheduler = importlib.import_module("kinone.torch.optim.lr_scheduler")
    data = importlib.import_module("kinone.torch.utils.data")
    assert nn is kinone.nn and torch.nn is kinone.nn and functional is kinone.nn.functional
    assert optim is kinone.optim and lr_scheduler.StepLR is kinone.optim.lr_scheduler.StepLR
    assert data.DataLoader is kinone.data.DataLoader and torch.utils.data.DataLoader is kinone.data.DataLoader
    assert torch.Tensor is kinone.autograd.Tensor and torch.no_grad is kinone.autograd.no_grad
    from kinone.torch.optim.lr_scheduler import StepLR  # the form mnist/main.py uses
    from kinone.torchvision import datasets, transforms

    assert StepLR is kinone.optim.lr_scheduler.StepLR
    assert transforms.Compose is kinone.data.transforms.Compose and hasattr(datasets, "MNIST")


def test_everything_autograd_exports_is_at_the_top():
    import kinone.torch as torch

    missing = [name for name in kinone.autograd.__all__ if not hasattr(torch, name)]
    assert not missing


def test_device_queries_without_an_accelerator():
    import kinone.torch as torch

    assert torch.cuda.is_available() == kinone.autograd.cuda.is_available()
    if not torch.cuda.is_available():
        assert torch.accelerator.is_available() is False and torch.accelerator.current_accelerator() is None
    assert torch.backends.mps.is_available() is False
    x = torch.tensor(np.ones(3, np.float32)).to(torch.device("cpu"))
    assert torch.is_tensor(x) and not torch.is_tensor(x.data) and torch.numel(x) == 3


def test_size_is_a_tuple_with_numel():
    import kinone.torch as torch

    assert torch.Size((2, 3, 4)).numel() == 24 and torch.Size((2, 3)) == (2, 3)


@pytest.mark.parametrize("module", ["kinone.torch", "kinone.torchvision", "kinone.torchvision.transforms"])
def test_all_names_exist(module):
    loaded = importlib.import_module(module)
    assert all(hasattr(loaded, name) for name in loaded.__all__)


def test_a_custom_function_pasted_from_pytorch_docs():
    import kinone.torch as torch

    class Exp(torch.autograd.Function):
        @staticmethod
        def forward(ctx, i):
            result = i.exp()
            ctx.save_for_backward(result)
            return result

        @staticmethod
        def backward(ctx, grad_output):
            (result,) = ctx.saved_tensors
            return grad_output * result

    x = torch.tensor(np.array([0.5, -1.0]), requires_grad=True)
    Exp.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.data, np.exp(x.data))
