"""`kinone.autograd.cuda`: what PyTorch's `torch.cuda` answers about CUDA devices.

    >>> from kinone.autograd import cuda
    >>> cuda.is_available()  # False without CuPy or a GPU (True under backend.use_standin_cuda())
    False
"""

from __future__ import annotations

from . import backend


def is_available() -> bool:
    """True when a CUDA device can be used: CuPy imports and sees a GPU (or the stand-in is on)."""
    return backend.cuda_is_available()


def device_count() -> int:
    """How many CUDA devices there are (0 without CuPy or a GPU)."""
    if not backend.cuda_is_available():
        return 0
    return int(backend.cuda_module().cuda.runtime.getDeviceCount())
