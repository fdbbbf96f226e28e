"""`torch.save` / `torch.load` as `.npz` files: no pickle.

An object is a tree of dicts, lists and tuples whose leaves are Tensors, NumPy arrays,
numbers, strings, booleans or None: a state dict, an optimizer's state dict, a checkpoint
dict holding both and an epoch. The arrays go into the file as its members (through
kinone.nn.save: atomic write, bounded reads), the tree as JSON metadata with a reference
per array. Dict keys keep their type (an optimizer's state is keyed by int). Anything else
(a Module, a function, an arbitrary class) is refused by name: PyTorch pickles it, which
runs code on load; save the module's `state_dict()` instead.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from pathlib import Path

import numpy as np

from kinone.autograd import Tensor, backend, device as _device
from kinone.nn.serialization import load_with_metadata, save as _save_arrays

FORMAT = "kinone-torch-save"
_SCALARS = (bool, int, float, str, type(None))
_SAFE_GLOBALS: list = []


def save(obj, f) -> None:
    """Write `obj` (module docstring) to the path `f` (a str or Path; PyTorch's buffers and
    file objects are not taken, since the write is atomic by renaming)."""
    arrays: OrderedDict = OrderedDict()
    tree = _encode(obj, arrays, "obj")  # first: an object without a pickle-free form is the error to report
    path = _path(f, "save")
    _save_arrays(arrays, path, metadata={"format": FORMAT, "version": 1, "object": tree})


def load(f, map_location=None, weights_only: bool = True):
    """Read what `save` wrote: Tensors where Tensors were saved, arrays where arrays were.
    `map_location` may name a device ("cpu", "cuda", "cuda:1") for the Tensors;
    `weights_only` is accepted for PyTorch's signature (nothing else can be in the file)."""
    path = _path(f, "load")
    arrays, metadata = load_with_metadata(path)
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        if metadata is None or "format" not in metadata:  # a plain state-dict file (kinone.nn.save)
            return OrderedDict((k, Tensor(v)) for k, v in arrays.items())
        raise ValueError(f"kinone.torch.load: {path} is a {metadata.get('format')!r} file, not one torch.save wrote")
    where = _device(map_location) if isinstance(map_location, str) else map_location
    return _decode(metadata.get("object"), arrays, where, path)


def _path(f, op: str) -> Path:
    if isinstance(f, (str, Path)):
        return Path(f)
    raise TypeError(f"kinone.torch.{op}: give a file path (str or Path); got {type(f).__name__} "
                    "(file objects and buffers are not supported: files are written atomically)")


def _encode(value, arrays: OrderedDict, where: str):
    if isinstance(value, Tensor):
        arrays[where] = backend.to_host(value.data)
        return {"__tensor__": where, "requires_grad": bool(value.requires_grad)}
    if isinstance(value, np.ndarray) or backend.is_cuda_array(value):
        arrays[where] = backend.to_host(value)
        return {"__array__": where}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise TypeError(f"kinone.torch.save: {where}: dict keys must be str or int, got {type(key).__name__}")
            items.append([key, _encode(item, arrays, f"{where}.{key}")])
        return {"__dict__": items}
    if isinstance(value, (list, tuple)):
        encoded = [_encode(item, arrays, f"{where}.{i}") for i, item in enumerate(value)]
        return {"__tuple__": encoded} if isinstance(value, tuple) else encoded
    hint = " (save its state_dict() instead)" if hasattr(value, "state_dict") else ""
    raise TypeError(f"kinone.torch.save: {where} is a {type(value).__name__}, which has no pickle-free form{hint}")


def _decode(value, arrays, where, path):
    if isinstance(value, list):
        return [_decode(item, arrays, where, path) for item in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value or "__array__" in value:
        key = value.get("__tensor__", value.get("__array__"))
        if key not in arrays:
            raise ValueError(f"kinone.torch.load: {path}: its metadata refers to an array {key!r} the file does not hold")
        if "__array__" in value:
            return arrays[key]
        tensor = Tensor(arrays[key])
        if where is not None:
            tensor = tensor.to(where)
        return tensor.requires_grad_(True) if value.get("requires_grad") else tensor
    if "__tuple__" in value:
        return tuple(_decode(item, arrays, where, path) for item in value["__tuple__"])
    if "__dict__" in value:
        return OrderedDict((key, _decode(item, arrays, where, path)) for key, item in value["__dict__"])
    raise ValueError(f"kinone.torch.load: {path}: unreadable metadata entry {sorted(value)}")


# PyTorch's allowlist for `torch.load(weights_only=True)` of pickled objects. Kinone's files hold
# no objects to construct (only arrays and JSON), so the list is kept and read by nothing:
# a script that allowlists its classes runs, and what it loads is what `load` always returns.
def add_safe_globals(safe_globals: list) -> None:
    _SAFE_GLOBALS.extend(safe_globals)


def get_safe_globals() -> list:
    return list(_SAFE_GLOBALS)


def clear_safe_globals() -> None:
    _SAFE_GLOBALS.clear()


@contextlib.contextmanager
def safe_globals(safe_globals: list):
    """`with torch.serialization.safe_globals([...]):` as PyTorch's (module comment above)."""
    saved = list(_SAFE_GLOBALS)
    _SAFE_GLOBALS.extend(safe_globals)
    try:
        yield
    finally:
        _SAFE_GLOBALS[:] = saved
