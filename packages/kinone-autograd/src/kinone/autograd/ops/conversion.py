"""PyTorch's legacy type names and formatting: `Tensor.type()` and `Tensor.__format__`.

`x.type()` names the tensor's type as PyTorch does ('torch.FloatTensor', 'torch.cuda.LongTensor');
`x.type(dtype)` casts, taking a dtype, such a name, or an object named like one (the facade's
`torch.LongTensor`), and returns `x` itself when nothing changes. `format(x, spec)` formats a 0-d
tensor as its Python number (`'{:+.2f}'.format(loss)`); any other tensor only with an empty spec.
"""

from __future__ import annotations

import numpy as np

from ..tensor import Tensor

# dtype -> PyTorch's legacy tensor type name.
TYPE_NAMES = {
    np.dtype(np.float32): "FloatTensor",
    np.dtype(np.float64): "DoubleTensor",
    np.dtype(np.float16): "HalfTensor",
    np.dtype(np.complex64): "ComplexFloatTensor",
    np.dtype(np.complex128): "ComplexDoubleTensor",
    np.dtype(np.int64): "LongTensor",
    np.dtype(np.int32): "IntTensor",
    np.dtype(np.int16): "ShortTensor",
    np.dtype(np.int8): "CharTensor",
    np.dtype(np.uint8): "ByteTensor",
    np.dtype(np.bool_): "BoolTensor",
}
_DTYPES = {name: dtype for dtype, name in TYPE_NAMES.items()}


def type_name(input) -> str:
    """'torch.FloatTensor' for a float32 tensor on the CPU, 'torch.cuda.FloatTensor' on a GPU."""
    name = TYPE_NAMES.get(np.dtype(input.dtype))
    if name is None:
        raise TypeError(f"type: dtype {input.dtype} has no PyTorch tensor type name")
    return ("torch.cuda." if input.is_cuda else "torch.") + name


def _target(dtype) -> tuple:
    """(dtype, device type or None) of `dtype`: a dtype, a name such as 'torch.cuda.LongTensor'
    (whose device is part of the type), or an object with such a `__name__` (torch.LongTensor)."""
    name = dtype if isinstance(dtype, str) else getattr(dtype, "__name__", "")
    prefix, _, short = name.rpartition(".")
    if short in _DTYPES and prefix in ("", "torch", "torch.cuda"):
        return _DTYPES[short], "cuda" if prefix == "torch.cuda" else "cpu"
    if name.startswith("torch."):
        raise TypeError(
            f"type: unknown tensor type {name!r} (expected e.g. 'torch.FloatTensor' or 'torch.cuda.LongTensor')"
        )
    try:
        return np.dtype(dtype), None
    except TypeError:
        raise TypeError(
            f"type: expected a dtype or a tensor type name such as 'torch.FloatTensor', got {dtype!r}"
        ) from None


def tensor_type(input, dtype=None, non_blocking: bool = False, **kwargs):
    """`type()`: the tensor's type name ('torch.FloatTensor'); `type(dtype)`: the tensor cast to
    `dtype` (a dtype, a type name, or torch.LongTensor and the like), itself when it already
    is of that type (as PyTorch's Tensor.type; differentiable between floating dtypes)."""
    if dtype is None:
        return type_name(input)
    target, device = _target(dtype)
    if device is not None and device != input.device.type:
        return input.to(device, target)
    return input.to(target)


def format_tensor(input, format_spec: str) -> str:
    """`format(t, spec)`: a 0-d tensor formatted as its Python number (PyTorch's Tensor.__format__);
    any other tensor (or a subclass, such as a Parameter) formats only with an empty spec, as str(t)."""
    if input.ndim == 0 and type(input) is Tensor:
        return input.item().__format__(format_spec)
    return object.__format__(input, format_spec)
