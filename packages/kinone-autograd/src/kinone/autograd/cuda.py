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


_allow_tf32 = False


def allow_tf32() -> bool:
    """Whether float32 matrix products on CUDA devices may run in TF32 (off by default)."""
    return _allow_tf32


def set_allow_tf32(enabled: bool) -> None:
    """PyTorch's `torch.backends.cuda.matmul.allow_tf32`: let cuBLAS compute float32 matrix
    products (and so convolutions, which are im2col + GEMM here) on TF32 tensor cores: about
    10 mantissa bits for the products, float32 accumulation, faster on Ampere and newer GPUs.
    Off by default, as in PyTorch. CPU results never change."""
    global _allow_tf32
    _allow_tf32 = bool(enabled)
    xp = backend.cuda_module() if backend.cuda_is_available() else None
    if xp is None or getattr(xp, "__name__", "") != "cupy":  # no CuPy, or the stand-in: nothing to switch
        return
    # Not run in CI (no GPU there); checked on a GPU by benchmarks/gpu/run.sh.
    import numpy as np
    from cupy._core import _routines_linalg as linalg

    linalg.set_compute_type(np.float32, linalg.COMPUTE_TYPE_TF32 if enabled else linalg.COMPUTE_TYPE_DEFAULT)
