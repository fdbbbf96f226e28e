"""`torch.accelerator`: the current accelerator (a CUDA device through CuPy), if any."""

from __future__ import annotations

from kinone.autograd import cuda, device


def is_available() -> bool:
    return cuda.is_available()


def current_accelerator():
    """The CUDA device when one is usable, else None (as PyTorch without an accelerator)."""
    return device("cuda") if cuda.is_available() else None


def device_count() -> int:
    return cuda.device_count() if cuda.is_available() else 0
