"""Activation functions. relu, sigmoid, tanh, softmax and log_softmax are kinone.autograd's
Functions; SiLU and GELU are defined here, each as one Function with its own backward."""

from __future__ import annotations

import math

import numpy as np

from kinone.autograd import Function, Tensor
from kinone.autograd.backend import get_array_module
from kinone.autograd.ops.elementwise import stable_sigmoid
from kinone.autograd.ops.promotion import require_floating


def relu(x: Tensor) -> Tensor:
    """max(x, 0)."""
    return x.relu()


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x)), stable for large |x|."""
    return x.sigmoid()


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def softmax(x: Tensor, dim: int) -> Tensor:
    return x.softmax(dim)


def log_softmax(x: Tensor, dim: int) -> Tensor:
    return x.log_softmax(dim)


class SiLU(Function):
    """y = x · σ(x);  dL/dx = g · σ(x) · (1 + x · (1 - σ(x)))."""

    @staticmethod
    def forward(ctx, x):
        require_floating("silu", x)
        s = stable_sigmoid(x)
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, grad):
        x, s = ctx.saved
        return grad * (s * (1 + x * (1 - s)))


def silu(x: Tensor) -> Tensor:
    """x · sigmoid(x) (also called swish)."""
    return SiLU.apply(x)


_SQRT_HALF = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_erf_exact = np.vectorize(math.erf, otypes=[np.float64])


def erf_values(x):
    """The error function of an array, elementwise, on the array's device (NumPy has none).

    On the CPU, float64 uses math.erf per element (exact, ~50 ns each); other dtypes use
    Abramowitz and Stegun 7.1.26, whose absolute error 1.5e-7 is at float32's own rounding
    level and which runs as a handful of vectorised NumPy ops. A CUDA array goes to
    `_device_erf`.
    """
    if get_array_module(x) is not np:
        return _device_erf(x)
    if x.dtype == np.float64:
        return _erf_exact(x)
    a = np.abs(x).astype(np.float64)
    t = 1 / (1 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return (np.sign(x) * (1 - poly * np.exp(-a * a))).astype(x.dtype)


def _device_erf(x):
    """erf of a CUDA array: CuPy's own kernel (`cupyx.scipy.special.erf`, exact in float32 and
    float64; not run in CI, checked on a GPU by benchmarks/gpu/run.sh). Any other CUDA module
    (the stand-in device of the tests) has no erf kernel: there the CPU's function runs on an
    explicit host copy (`.get()`) and the result is copied back, so the stand-in gives the
    CPU's numbers exactly."""
    xp = get_array_module(x)
    if xp.__name__ == "cupy":
        import cupyx.scipy.special

        return cupyx.scipy.special.erf(x)
    return xp.asarray(erf_values(x.get()))


_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)


class Erf(Function):
    """y = erf(x) = 2/√π ∫₀ˣ exp(-t²) dt;  dL/dx = g · 2/√π · exp(-x²)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return erf_values(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * (np.exp(-x * x) * x.dtype.type(_TWO_OVER_SQRT_PI))


def erf(x: Tensor) -> Tensor:
    """The error function, elementwise (as torch.erf); GELU's exact form is x · ½ (1 + erf(x/√2))."""
    return Erf.apply(x)


class GELU(Function):
    """y = x · Φ(x) with Φ(x) = ½ (1 + erf(x / √2)) (the exact form);
    dL/dx = g · (Φ(x) + x · φ(x)) with φ(x) = exp(-x² / 2) / √(2π)."""

    @staticmethod
    def forward(ctx, x):
        require_floating("gelu", x)
        cdf = 0.5 * (1 + erf_values(x * x.dtype.type(_SQRT_HALF)))
        ctx.save_for_backward(x, cdf)
        return x * cdf

    @staticmethod
    def backward(ctx, grad):
        x, cdf = ctx.saved
        pdf = np.exp(-0.5 * x * x) * x.dtype.type(_INV_SQRT_2PI)
        return grad * (cdf + x * pdf)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """x · Φ(x), Φ the standard normal CDF (exact erf form; `approximate="none"` only)."""
    if approximate != "none":
        raise ValueError(f"gelu: only approximate='none' (the exact erf form) is supported, got {approximate!r}")
    return GELU.apply(x)
