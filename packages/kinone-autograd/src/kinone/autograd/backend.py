"""Devices and the one array-module switch (Chainer's and DeZero's `get_array_module`).

A Tensor's array is a NumPy array (device "cpu") or a CuPy array (device "cuda:N"). Every
Function reaches its array library through `get_array_module(*arrays)`, so an op's math is
written once for both:

    xp = get_array_module(x)
    out = xp.empty_like(x); xp.maximum(x, 0, out=out)

NumPy is the only hard dependency; CuPy is imported the first time a CUDA device is asked for.
Without a GPU, `use_standin_cuda()` makes "cuda" a stand-in device (`standin.py`): host memory
behind an array type that, like CuPy's, refuses to mix with NumPy arrays and refuses implicit
conversion to them, so device mistakes fail in CI.
"""

from __future__ import annotations

import contextlib
import re

import numpy as np

_cupy = None  # the CUDA array module once loaded: cupy, or the stand-in
_standin_active = False


class Device:
    """Where a tensor's array lives: `Device("cpu")`, `Device("cuda")` (= "cuda:0"), `Device("cuda:1")`."""

    __slots__ = ("index", "type")

    def __init__(self, spec="cpu"):
        if isinstance(spec, Device):
            self.type, self.index = spec.type, spec.index
            return
        match = re.fullmatch(r"(cpu|cuda)(?::(\d+))?", str(spec).strip())
        if match is None:
            raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N'; got {spec!r}")
        self.type = match.group(1)
        index = match.group(2)
        if self.type == "cpu" and index not in (None, "0"):
            raise ValueError(f"device: there is one cpu device; got {spec!r}")
        self.index = None if self.type == "cpu" else int(index or 0)

    def __str__(self) -> str:
        return "cpu" if self.type == "cpu" else f"cuda:{self.index}"

    def __repr__(self) -> str:
        return f"device({str(self)!r})"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            try:
                other = Device(other)
            except ValueError:
                return False
        return isinstance(other, Device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))


CPU = Device("cpu")


def device(spec="cpu") -> Device:
    """`kinone.autograd.device("cuda:0")`, as `torch.device`."""
    return Device(spec)


def cuda_device(index=None) -> Device:
    """What `.cuda(index)` of a Tensor or Module means: `cuda:0`, `cuda:N` for an int, or the
    device given."""
    if index is None:
        return Device("cuda")
    return Device(f"cuda:{index}") if isinstance(index, int) else Device(index)


# ---------------------------------------------------------------------- the CUDA module
def _load_cuda():
    global _cupy
    if _cupy is None:
        try:
            import cupy
        except ImportError:
            raise RuntimeError(
                "cuda: CuPy is not installed; install kinone-autograd[cuda12] or kinone-autograd[cuda13] "
                "(the CuPy wheel for your CUDA version)"
            ) from None
        _cupy = cupy
    return _cupy


def cuda_module():
    """The array module of CUDA devices (CuPy, or the stand-in under `use_standin_cuda`)."""
    return _load_cuda()


def cuda_is_available() -> bool:
    """True when a CUDA device can be used (CuPy imports and sees a GPU), or under the stand-in."""
    if _standin_active:
        return True
    try:
        xp = _load_cuda()
        return xp.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no CuPy, no driver, no device: all mean "not available"
        return False


@contextlib.contextmanager
def use_standin_cuda():
    """Within this block "cuda" is the stand-in device (host memory, CuPy's strictness)."""
    global _cupy, _standin_active
    from . import standin

    saved = _cupy, _standin_active
    _cupy, _standin_active = standin, True
    try:
        yield
    finally:
        _cupy, _standin_active = saved


# ---------------------------------------------------------------------- arrays
def is_cuda_array(array) -> bool:
    return type(array) is not np.ndarray and _cupy is not None and isinstance(array, _cupy.ndarray)


def get_array_module(*arrays):
    """numpy, or the CUDA module if any of `arrays` lives on a CUDA device."""
    for array in arrays:
        if type(array) is not np.ndarray and _cupy is not None and isinstance(array, _cupy.ndarray):
            return _cupy
    return np


def device_of(array) -> Device:
    if type(array) is np.ndarray or not is_cuda_array(array):
        return CPU
    return Device(f"cuda:{array.device.id}")


def to_device(array, target: Device):
    """`array` on `target` (the same array when it is already there)."""
    target = Device(target)
    if target.type == "cpu":
        return to_host(array)
    xp = _load_cuda()
    with xp.cuda.Device(target.index):
        if is_cuda_array(array) and array.device.id == target.index:
            return array
        return xp.asarray(to_host(array) if is_cuda_array(array) else array)


def to_host(array) -> np.ndarray:
    """A NumPy array: `array` itself on the CPU, a host copy of a CUDA array."""
    if type(array) is np.ndarray:
        return array
    if is_cuda_array(array):
        return array.get()
    return np.asarray(array)


def as_array(value, like):
    """`value` (an array, a NumPy scalar or a Python number) as an array on `like`'s device."""
    xp = get_array_module(like)
    if xp is np:
        return np.asarray(value)
    return value if isinstance(value, xp.ndarray) else xp.asarray(value)


def owns_writable_memory(array) -> bool:
    """True when `array` is not a view (NumPy: and is writeable); a leaf may then adopt it."""
    flags = array.flags
    if type(array) is np.ndarray:
        return flags.owndata and flags.writeable
    return flags.owndata
