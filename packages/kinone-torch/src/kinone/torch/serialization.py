"""`torch.save` / `torch.load` as `.npz` files: no pickle, and nothing in a file runs code.

An object is a tree of dicts, lists and tuples whose leaves are Tensors, NumPy arrays,
numbers, strings, booleans or None (a state dict, an optimizer's state dict, a checkpoint),
or a whole Module. The arrays go into the file as its members (through kinone.nn's
serialization: atomic write to a path, bounded reads), the tree as JSON metadata with a
reference per array. Dict keys keep their type (an optimizer's state is keyed by int).

A Module is written as a structured tree: its class as "module:qualname" text, its plain
attributes (numbers, strings, None, Tensors, lists/tuples/dicts of those, module-level
functions by name), its submodules in order, its parameters and buffers (with
requires_grad) and `training`. Tied parameters and shared submodules stay shared. Anything
else in a module (a lambda, an arbitrary object, a hook) is refused naming its path.

`load` rebuilds a Module only from classes it may construct, looked up by that text in an
allowlist (never imported): Kinone's own `kinone.nn` Module classes and `kinone.nn.functional`
functions, plus what the caller allowed with `safe_globals([...])` / `add_safe_globals` (as
PyTorch's `weights_only=True`). It calls no `__init__`: `cls.__new__(cls)`, then
`Module.__init__`'s empty registries, then the saved attributes, submodules, parameters and
buffers.
"""

from __future__ import annotations

import contextlib
import os
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np

from kinone.autograd import Tensor, backend
from kinone.autograd import device as _device
from kinone.nn import Module, Parameter
from kinone.nn import functional as _functional
from kinone.nn.serialization import load_bytes_with_metadata, load_with_metadata, save_bytes
from kinone.nn.serialization import save as _save_arrays

FORMAT = "kinone-torch-save"
VERSION = 2  # 2: Modules; a version-1 file (no Modules) reads the same
_SCALARS = (bool, int, float, str, type(None))
_SAFE_GLOBALS: list = []
# What Module.__init__ sets up: written from the registries (or refused when a hook is set), never as attributes.
_MODULE_INTERNALS = frozenset(Module().__dict__)
_REGISTRIES = ("_parameters", "_buffers", "_modules", "_non_persistent_buffers", "training")


# ---------------------------------------------------------------------------- save / load
def save(obj, f) -> None:
    """Write `obj` (module docstring) to `f`: a path (str or os.PathLike, written atomically)
    or an open binary file (the bytes, built in memory, are written into it)."""
    arrays: OrderedDict = OrderedDict()
    tree = _Encoder(arrays).encode(obj, "obj")  # first: an object without a pickle-free form is the error to report
    metadata = {"format": FORMAT, "version": VERSION, "object": tree}
    if hasattr(f, "write"):
        f.write(save_bytes(arrays, metadata=metadata))
    else:
        _save_arrays(arrays, _path(f, "save"), metadata=metadata)


def load(f, map_location=None, weights_only: bool = True, **kwargs):
    """Read what `save` wrote, from a path or an open binary file: Tensors where Tensors were
    saved, arrays where arrays were, Modules rebuilt from allowed classes (module docstring).
    `map_location` may name a device ("cpu", "cuda", "cuda:1") for the Tensors. `weights_only`
    is accepted for PyTorch's signature: with either value only allowlisted classes are built."""
    if hasattr(f, "read"):
        name = str(getattr(f, "name", "<file object>"))
        arrays, metadata = load_bytes_with_metadata(f.read(), name=name)
    else:
        name = _path(f, "load")
        arrays, metadata = load_with_metadata(name)
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        if metadata is None or "format" not in metadata:  # a plain state-dict file (kinone.nn.save)
            return OrderedDict((k, Tensor(v)) for k, v in arrays.items())
        raise ValueError(f"kinone.torch.load: {name} is a {metadata.get('format')!r} file, not one torch.save wrote")
    where = _device(map_location) if isinstance(map_location, str) else map_location
    return _Decoder(arrays, where, name).decode(metadata.get("object"), "obj")


def _path(f, op: str) -> Path:
    if isinstance(f, (str, os.PathLike)):
        return Path(f)
    raise TypeError(
        f"kinone.torch.{op}: give a file path (str or os.PathLike) or an open binary file; got {type(f).__name__}"
    )


# ---------------------------------------------------------------------------- writing the tree
def _global_name(obj) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def _is_named_function(value) -> bool:
    """A module-level function that its module's namespace gives back by its qualified name."""
    if not isinstance(value, (types.FunctionType, types.BuiltinFunctionType)) or "<" in value.__qualname__:
        return False
    found = sys.modules.get(value.__module__)
    for part in value.__qualname__.split("."):
        found = getattr(found, part, None)
    return found is value


class _Encoder:
    """Turns an object into JSON-able data, putting its arrays into `arrays` (keyed by path)."""

    def __init__(self, arrays: OrderedDict):
        self.arrays = arrays
        self.seen: dict[int, dict] = {}  # id of a Tensor or Module -> the reference written for it
        self.keep: list = []  # keeps each seen object alive, so no id is reused while writing

    def encode(self, value, where: str):
        if isinstance(value, (Tensor, Module)):
            if id(value) in self.seen:
                return self.seen[id(value)]
            self.keep.append(value)
            return self._tensor(value, where) if isinstance(value, Tensor) else self._module(value, where)
        if isinstance(value, np.ndarray) or backend.is_cuda_array(value):
            self.arrays[where] = backend.to_host(value)
            return {"__array__": where}
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, _SCALARS):
            return value
        if isinstance(value, dict):
            items = value.items()
            return {"__dict__": [[self._key(key, where), self.encode(item, f"{where}.{key}")] for key, item in items]}
        if isinstance(value, (list, tuple)):
            encoded = [self.encode(item, f"{where}.{i}") for i, item in enumerate(value)]
            return {"__tuple__": encoded} if isinstance(value, tuple) else encoded
        if _is_named_function(value):
            return {"__function__": _global_name(value)}
        kind = f"the function {value.__qualname__}" if callable(value) and hasattr(value, "__qualname__") else None
        raise TypeError(
            f"kinone.torch.save: {where} is {kind or 'a ' + type(value).__name__}, which has no pickle-free form "
            "(a file holds Tensors, arrays, numbers, strings, None, lists/tuples/dicts of them, Modules, "
            "and module-level functions by name)"
        )

    @staticmethod
    def _key(key, where: str):
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            raise TypeError(f"kinone.torch.save: {where}: dict keys must be str or int, got {type(key).__name__}")
        return key

    def _tensor(self, tensor: Tensor, where: str) -> dict:
        self.arrays[where] = backend.to_host(tensor.data)
        kind = "__parameter__" if isinstance(tensor, Parameter) else "__tensor__"
        self.seen[id(tensor)] = {kind: where}
        return {kind: where, "requires_grad": bool(tensor.requires_grad)}

    def _module(self, module: Module, where: str) -> dict:
        self.seen[id(module)] = {"__module_ref__": where}
        state = module.__dict__
        for name in sorted(_MODULE_INTERNALS - set(_REGISTRIES)):
            if state.get(name):
                raise TypeError(
                    f"kinone.torch.save: {where}.{name} is set (hooks are functions, which a file cannot hold); "
                    "remove them before saving"
                )
        return {
            "__module__": _global_name(type(module)),
            "training": bool(module.training),
            "attributes": [
                [name, self.encode(value, f"{where}.{name}")]
                for name, value in state.items()
                if name not in _MODULE_INTERNALS
            ],
            "parameters": self._registry(module._parameters, where),
            "buffers": self._registry(module._buffers, where),
            "non_persistent_buffers": sorted(module._non_persistent_buffers),
            "modules": self._registry(module._modules, where),
        }

    def _registry(self, registry: OrderedDict, where: str) -> list:
        return [
            [name, None if value is None else self.encode(value, f"{where}.{name}")] for name, value in registry.items()
        ]


# ---------------------------------------------------------------------------- reading the tree
def _allowed_globals() -> dict:
    """'module:qualname' -> class or function that `load` may use: Kinone's own kinone.nn Module
    classes and kinone.nn.functional functions, then what the caller allowed (safe_globals)."""
    allowed = {}
    pending = [Module]
    while pending:
        cls = pending.pop()
        if cls.__module__ == "kinone.nn" or cls.__module__.startswith("kinone.nn."):
            allowed[_global_name(cls)] = cls
        pending.extend(cls.__subclasses__())
    for value in vars(_functional).values():
        if isinstance(value, types.FunctionType):
            allowed[_global_name(value)] = value
    for entry in _SAFE_GLOBALS:
        value = entry[0] if isinstance(entry, tuple) else entry
        if hasattr(value, "__module__") and hasattr(value, "__qualname__"):
            allowed[_global_name(value)] = value
    return allowed


class _Decoder:
    """Rebuilds what `_Encoder` wrote, constructing only allowlisted classes."""

    def __init__(self, arrays, where, name):
        self.arrays, self.where, self.name = arrays, where, name
        self.built: dict[str, object] = {}  # path of a Tensor or Module -> the object built for it
        self.allowed = _allowed_globals()

    def fail(self, message: str):
        raise ValueError(f"kinone.torch.load: {self.name}: {message}")

    def decode(self, value, where: str):
        if isinstance(value, list):
            return [self.decode(item, f"{where}.{i}") for i, item in enumerate(value)]
        if not isinstance(value, dict):
            return value
        if "__tensor__" in value or "__parameter__" in value:
            return self._tensor(value)
        if "__array__" in value:
            return self._array(value["__array__"])
        if "__tuple__" in value:
            return tuple(self.decode(item, f"{where}.{i}") for i, item in enumerate(value["__tuple__"]))
        if "__dict__" in value:
            return OrderedDict((key, self.decode(item, f"{where}.{key}")) for key, item in value["__dict__"])
        if "__function__" in value:
            return self._global(value["__function__"], where, "function")
        if "__module_ref__" in value:
            return self._shared(value["__module_ref__"])
        if "__module__" in value:
            return self._module(value, where)
        self.fail(f"unreadable metadata entry {sorted(value)}")

    def _array(self, key):
        if key not in self.arrays:
            self.fail(f"its metadata refers to an array {key!r} the file does not hold")
        return self.arrays[key]

    def _shared(self, key):
        if key not in self.built:
            self.fail(f"its metadata refers to {key!r} before writing it")
        return self.built[key]

    def _tensor(self, value: dict):
        key = value.get("__tensor__", value.get("__parameter__"))
        if "requires_grad" not in value:  # a second reference to a tensor written before
            return self._shared(key)
        tensor = Tensor(self._array(key))
        if self.where is not None:
            tensor = tensor.to(self.where)
        if "__parameter__" in value:
            tensor = Parameter(tensor.data, requires_grad=bool(value["requires_grad"]))
        elif value["requires_grad"]:
            tensor.requires_grad_(True)
        self.built[key] = tensor
        return tensor

    def _global(self, name, where: str, kind: str):
        if not isinstance(name, str) or name not in self.allowed:
            short = str(name).rpartition(":")[2]
            self.fail(
                f"{where} is a {kind} of {name!r}, which is not allowed: allow it with "
                f"torch.serialization.safe_globals([{short}]) or add_safe_globals([{short}])"
            )
        return self.allowed[name]

    def _check_name(self, name, where: str) -> None:
        """An attribute name a file may set: a str, not dunder, not one of Module's registries."""
        if not isinstance(name, str) or name.startswith("__") or name in _MODULE_INTERNALS:
            self.fail(f"{where}: {name!r} is not an attribute name a file may set")

    def _module(self, value: dict, where: str) -> Module:
        cls = self._global(value["__module__"], where, "class")
        if not (isinstance(cls, type) and issubclass(cls, Module)):
            self.fail(f"{where}: {value['__module__']!r} is not a Module class")
        module = cls.__new__(cls)
        Module.__init__(module)
        self.built[where] = module
        for name, item in value.get("attributes", []):
            self._check_name(name, where)
            object.__setattr__(module, name, self.decode(item, f"{where}.{name}"))
        module.training = bool(value.get("training", True))
        for registry in ("parameters", "buffers", "modules"):
            target = getattr(module, f"_{registry}")
            for name, item in value.get(registry, []):
                self._check_name(name, where)
                target[name] = None if item is None else self.decode(item, f"{where}.{name}")
        module._non_persistent_buffers.update(value.get("non_persistent_buffers", []))
        return module


# ---------------------------------------------------------------------------- the allowlist
# PyTorch's allowlist for `torch.load(weights_only=True)`: the classes (and functions) a file
# may name beyond Kinone's own (see `_allowed_globals`).
def add_safe_globals(safe_globals: list) -> None:
    _SAFE_GLOBALS.extend(safe_globals)


def get_safe_globals() -> list:
    return list(_SAFE_GLOBALS)


def clear_safe_globals() -> None:
    _SAFE_GLOBALS.clear()


@contextlib.contextmanager
def safe_globals(safe_globals: list):
    """`with torch.serialization.safe_globals([...]):` allows those classes in `load` inside the block."""
    saved = list(_SAFE_GLOBALS)
    _SAFE_GLOBALS.extend(safe_globals)
    try:
        yield
    finally:
        _SAFE_GLOBALS[:] = saved
