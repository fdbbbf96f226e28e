"""Activation functions. relu, sigmoid, tanh, softmax and log_softmax are kinone.autograd's
Functions; SiLU, GELU, Erf, LeakyReLU, ELU, Softplus, ReLU6, Hardsigmoid, Hardswish and Mish
are defined here, each as one Function with its own backward."""

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


# ---------------------------------------------------------------------------- piecewise and smooth
# Gradients at the kinks follow PyTorch's choices (leaky_relu's slope a at 0, relu6's and
# hardsigmoid's 0 at their corners; hardswish's 0 at -3 and 1 at 3).
class LeakyReLU(Function):
    """y = x if x > 0 else a · x;  dL/dx = g if x > 0 else a · g."""

    @staticmethod
    def forward(ctx, x, *, negative_slope=0.01):
        require_floating("leaky_relu", x)
        positive = x > 0
        ctx.save_for_backward(positive)
        return np.where(positive, x, x * negative_slope)

    @staticmethod
    def backward(ctx, grad):
        (positive,) = ctx.saved
        return np.where(positive, grad, grad * ctx.attrs["negative_slope"])


class ELU(Function):
    """y = x if x > 0 else α · (exp(x) - 1);  dL/dx = g if x > 0 else g · α · exp(x)."""

    @staticmethod
    def forward(ctx, x, *, alpha=1.0):
        require_floating("elu", x)
        positive = x > 0
        scaled_exp = np.exp(np.minimum(x, 0)) * alpha  # α · exp(x) on the negative side, never overflowing
        ctx.save_for_backward(positive, scaled_exp)
        return np.where(positive, x, scaled_exp - alpha)

    @staticmethod
    def backward(ctx, grad):
        positive, scaled_exp = ctx.saved
        return np.where(positive, grad, grad * scaled_exp)


def softplus_values(z):
    """log(1 + exp(z)) = max(z, 0) + log(1 + exp(-|z|)), finite for any finite z."""
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


class Softplus(Function):
    """y = log(1 + exp(β · x)) / β where β · x <= threshold, else y = x;
    dL/dx = g · σ(β · x) where β · x <= threshold, else g."""

    @staticmethod
    def forward(ctx, x, *, beta=1.0, threshold=20.0):
        require_floating("softplus", x)
        z = x * beta
        linear = z > threshold
        ctx.save_for_backward(z, linear)
        return np.where(linear, x, softplus_values(z) / beta)

    @staticmethod
    def backward(ctx, grad):
        z, linear = ctx.saved
        return np.where(linear, grad, grad * stable_sigmoid(z))


class ReLU6(Function):
    """y = min(max(x, 0), 6);  dL/dx = g if 0 < x < 6 else 0."""

    @staticmethod
    def forward(ctx, x):
        require_floating("relu6", x)
        ctx.save_for_backward((x > 0) & (x < 6))
        return np.clip(x, 0, 6)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved
        return np.where(inside, grad, 0).astype(grad.dtype, copy=False)


class Hardsigmoid(Function):
    """y = min(max(x / 6 + 1/2, 0), 1);  dL/dx = g / 6 if -3 < x < 3 else 0."""

    @staticmethod
    def forward(ctx, x):
        require_floating("hardsigmoid", x)
        ctx.save_for_backward((x > -3) & (x < 3))
        return np.clip(x / 6 + 0.5, 0, 1)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved
        return np.where(inside, grad / 6, 0).astype(grad.dtype, copy=False)


class Hardswish(Function):
    """y = x · min(max(x + 3, 0), 6) / 6;
    dL/dx = 0 if x <= -3, g · (2x + 3) / 6 if -3 < x < 3, g if x >= 3."""

    @staticmethod
    def forward(ctx, x):
        require_floating("hardswish", x)
        ctx.save_for_backward(x)
        return x * np.clip(x + 3, 0, 6) / 6

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        slope = np.where(x <= -3, 0, np.where(x < 3, x / 3 + 0.5, 1)).astype(grad.dtype, copy=False)
        return grad * slope


class Mish(Function):
    """y = x · tanh(softplus(x)), softplus(x) = log(1 + exp(x));
    dL/dx = g · (t + x · σ(x) · (1 - t²)) with t = tanh(softplus(x))."""

    @staticmethod
    def forward(ctx, x):
        require_floating("mish", x)
        t = np.tanh(softplus_values(x))
        ctx.save_for_backward(x, t)
        return x * t

    @staticmethod
    def backward(ctx, grad):
        x, t = ctx.saved
        return grad * (t + x * stable_sigmoid(x) * (1 - t * t))


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x where x > 0, negative_slope · x elsewhere. `inplace` is accepted and ignored: the result is a new tensor."""
    return LeakyReLU.apply(input, negative_slope=float(negative_slope))


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x where x > 0, alpha · (exp(x) - 1) elsewhere. `inplace` is accepted and ignored."""
    return ELU.apply(input, alpha=float(alpha))


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta · x)) / beta, and x itself where beta · x > threshold (as torch)."""
    return Softplus.apply(input, beta=float(beta), threshold=float(threshold))


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(x, 0), 6). `inplace` is accepted and ignored."""
    return ReLU6.apply(input)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(x / 6 + 1/2, 0), 1). `inplace` is accepted and ignored."""
    return Hardsigmoid.apply(input)


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """x · hardsigmoid(x) (MobileNetV3's activation). `inplace` is accepted and ignored."""
    return Hardswish.apply(input)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """x · tanh(softplus(x)). `inplace` is accepted and ignored."""
    return Mish.apply(input)
