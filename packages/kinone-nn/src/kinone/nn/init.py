"""Parameter initialisation, in place, with PyTorch's names and formulas.

fan_in = in_channels · kernel area (dim 1 and beyond), fan_out = out_channels · kernel area.
Gains: linear/conv/sigmoid 1, tanh 5/3, relu √2, leaky_relu √(2 / (1 + a²)).
Tensors are filled on their device, with random numbers from that device's generator
(`kinone.autograd.default_generator(device)`, seeded by `manual_seed`); on the CPU these are
the draws of `default_generator()`. Normal draws are `mean + std·z` with z from
`standard_normal` (what NumPy's `normal` computes, bit for bit; CuPy's Generator has no
`normal`). Filling a Tensor bumps its version (`t._version`), as every in-place change Kinone
makes.
"""

from __future__ import annotations

import math

import numpy as np

from kinone.autograd import Tensor, backend, default_generator, increment_version


def _array(tensor) -> np.ndarray:
    return tensor.data if isinstance(tensor, Tensor) else tensor


def _generator(tensor):
    """The generator of the device `tensor` lives on."""
    return default_generator(backend.device_of(_array(tensor)))


def _normal(rng, mean: float, std: float, shape):
    """N(mean, std²) draws: NumPy's `normal` is `loc + scale·z` in float64, so this gives its
    numbers exactly, and it also runs on CuPy's Generator, which has only `standard_normal`."""
    return rng.standard_normal(shape) * std + mean


def _fill(tensor, values):
    array = _array(tensor)
    array[...] = values.astype(array.dtype, copy=False)
    if isinstance(tensor, Tensor):
        increment_version(tensor)
    return tensor


def calculate_fan_in_and_fan_out(tensor) -> tuple[int, int]:
    shape = _array(tensor).shape
    if len(shape) < 2:
        raise ValueError(f"init: fan in and fan out need a tensor of at least 2 dims, got shape {shape}")
    receptive_field = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive_field, shape[0] * receptive_field


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _fan(tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a: float = 0.0, b: float = 1.0):
    """Fill with U(a, b)."""
    return _fill(tensor, _generator(tensor).uniform(a, b, _array(tensor).shape))


def normal_(tensor, mean: float = 0.0, std: float = 1.0):
    """Fill with N(mean, std²)."""
    return _fill(tensor, _normal(_generator(tensor), mean, std, _array(tensor).shape))


def trunc_normal_(tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0):
    """Fill with N(mean, std²) truncated to [a, b] (redrawing values outside)."""
    rng = _generator(tensor)
    values = _normal(rng, mean, std, _array(tensor).shape)
    outside = (values < a) | (values > b)
    while outside.any():
        values[outside] = _normal(rng, mean, std, int(outside.sum()))
        outside = (values < a) | (values > b)
    return _fill(tensor, values)


def constant_(tensor, value: float):
    array = _array(tensor)
    return _fill(tensor, backend.get_array_module(array).full(array.shape, value))


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor, gain: float = 1.0):
    """U(-b, b) with b = gain · √(6 / (fan_in + fan_out))."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain: float = 1.0):
    """N(0, std²) with std = gain · √(2 / (fan_in + fan_out))."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """U(-b, b) with b = gain · √(3 / fan); gain from `nonlinearity` (and slope `a`)."""
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(tensor, mode))
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """N(0, std²) with std = gain / √fan."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std)
