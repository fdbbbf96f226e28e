"""The one parser of kinone-nn's size arguments (kernel_size, stride, padding, dilation,
output_padding, scale factors of whole pixels): an int, or a tuple or list of one int per
spatial dim, as PyTorch's `_single` / `_pair` and its C++ `expand_param_if_needed` read them.

    pair(3, "stride", "conv2d")       -> (3, 3)
    pair([2], "stride", "conv2d")     -> (2, 2)   (one value is repeated, as PyTorch does)
    pair((1, 2, 3), "stride", ...)    -> ValueError (PyTorch: RuntimeError, same words)
    pair(1.5, "padding", ...)         -> TypeError
"""

from __future__ import annotations

import numpy as np


def ntuple(value, n: int, name: str, op: str) -> tuple[int, ...]:
    """`value` as a tuple of n ints (see the module docstring)."""
    if _is_int(value):
        return (int(value),) * n
    if isinstance(value, (tuple, list)) and all(_is_int(v) for v in value):
        if len(value) == 1:
            return (int(value[0]),) * n
        if len(value) == n:
            return tuple(int(v) for v in value)
        raise ValueError(
            f"{op}: expected {name} to be a single integer value or a list of {n} values to match "
            f"the convolution dimensions, but got {name}={list(value)}"
        )
    raise TypeError(f"{op}(): argument '{name}' must be an int or a tuple of ints, not {value!r}")


def single(value, name: str, op: str) -> tuple[int]:
    """An int or a 1-tuple as a 1-tuple (the 1-D layers)."""
    return ntuple(value, 1, name, op)


def pair(value, name: str, op: str) -> tuple[int, int]:
    """An int or a pair of ints as a pair: 3 -> (3, 3), (3, 1) -> (3, 1)."""
    return ntuple(value, 2, name, op)


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
