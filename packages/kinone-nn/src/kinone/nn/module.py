"""`Module`: the base class of layers and models, with PyTorch's semantics.

Parameters, buffers and submodules are registered by assigning them to attributes, in
insertion order, which fixes the order of `parameters()` and the dotted keys of
`state_dict()` (`layer1.0.conv1.weight`, `bn1.running_mean`, ...), so torchvision-style
checkpoints convert by name.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np

from kinone.autograd import Tensor, backend, increment_version
from kinone.autograd.tensor import parse_to_args

from .parameter import Parameter


class IncompatibleKeys(NamedTuple):
    """What `load_state_dict` did not match (both empty after a strict load)."""

    missing_keys: list
    unexpected_keys: list


class RemovableHandle:
    """Returned by hook registrations; `remove()` unregisters the hook."""

    _ids = itertools.count()

    def __init__(self, hooks: dict):
        self._hooks = hooks
        self.id = next(RemovableHandle._ids)

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.remove()
        return False


def _as_array(value):
    """A state-dict value (Tensor, array on any device, number or list) as an array."""
    if isinstance(value, Tensor):
        return value.data
    return value if backend.is_cuda_array(value) else np.asarray(value)


class Module:
    """Base class of every layer and model. Subclasses define `forward` and assign their
    parameters (`Parameter`), buffers (`register_buffer`) and submodules as attributes."""

    training: bool

    def __init__(self):
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())

    # ------------------------------------------------------------------ forward
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        for hook in tuple(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        for hook in tuple(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    def register_forward_hook(self, hook: Callable) -> RemovableHandle:
        """`hook(module, inputs, output)` runs after every forward; a non-None return replaces the output."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def register_forward_pre_hook(self, hook: Callable) -> RemovableHandle:
        """`hook(module, inputs)` runs before every forward; a non-None return replaces the inputs."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() is called")
        params, buffers, modules = self._parameters, self._buffers, self._modules
        # Re-assigning a registered name keeps its place (PyTorch's order: tied weights and
        # replaced submodules keep their state-dict position).
        if isinstance(value, Parameter):
            if name not in params:
                self._discard(name)
            params[name] = value
        elif isinstance(value, Module):
            if name not in modules:
                self._discard(name)
            modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(
                    f"{type(self).__name__}.{name} is a parameter: assign a Parameter or None, not {type(value).__name__}"
                )
            params[name] = None
        elif name in modules:
            if value is not None:
                raise TypeError(
                    f"{type(self).__name__}.{name} is a submodule: assign a Module or None, not {type(value).__name__}"
                )
            modules[name] = None
        elif name in buffers:
            buffers[name] = None if value is None else (value if isinstance(value, Tensor) else Tensor(value))
        else:
            object.__setattr__(self, name, value)

    def _discard(self, name: str) -> None:
        self.__dict__.pop(name, None)
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        self._non_persistent_buffers.discard(name)

    def __getattr__(self, name: str):
        # Only called when normal lookup fails: look in the registries.
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in d and name in d[registry]:
                return d[registry][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        if name in self._parameters or name in self._buffers or name in self._modules:
            self._discard(name)
        else:
            object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, got {type(param).__name__}")
        if name not in self._parameters:  # a registered name keeps its place
            self._discard(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """A non-learnable state (running statistics, counters): in `state_dict()` when persistent."""
        if "." in name or not name:
            raise KeyError(f"register_buffer: invalid buffer name {name!r}")
        if name in self._buffers:
            self._non_persistent_buffers.discard(name)
        else:
            self._discard(name)
        self._buffers[name] = None if tensor is None else (tensor if isinstance(tensor, Tensor) else Tensor(tensor))
        if not persistent:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module, got {type(module).__name__}")
        if name not in self._modules:
            self._discard(name)
        self._modules[name] = module

    register_module = add_module

    # ------------------------------------------------------------------ traversal
    def named_modules(self, memo: set | None = None, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every descendant, each once, with dotted names ("" for self)."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                yield from module.named_modules(memo, f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator[Module]:
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry: str, prefix: str, recurse: bool):
        seen = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Total number of parameter elements (shared parameters counted once)."""
        return sum(p.data.size for p in self.parameters() if p.requires_grad or not trainable_only)

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> Module:
        """Set training mode here and in every descendant (BatchNorm, Dropout read it)."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.data[...] = 0
                increment_version(p.grad)

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call `fn` on every descendant (children first), then on self; returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def to(self, *args, device=None, dtype=None) -> Module:
        """`to(device)`, `to(dtype)`, `to(device, dtype)` or `to(tensor)`, as PyTorch: move every
        parameter and buffer to `device` and/or cast the floating ones to `dtype`, in place.

        The Parameter and buffer objects stay the same (an optimizer built before the move
        keeps working); they get new arrays, and their versions are bumped (a graph recorded
        before can no longer backward). On a move, gradients move with their parameters; a
        cast drops them (they would have the old dtype). Returns self.
        """
        device, dtype = parse_to_args(args, device, dtype)
        for t in itertools.chain(self.parameters(), self.buffers()):
            moved = device is not None and t.device != device
            if moved:
                t.data = backend.to_device(t.data, device)
                if t.grad is not None:
                    t.grad.data = backend.to_device(t.grad.data, device)
            cast = dtype is not None and t.data.dtype.kind == "f" and t.data.dtype != dtype
            if cast:
                t.data = t.data.astype(dtype)
                t.grad = None
            if moved or cast:
                increment_version(t)
        return self

    def cuda(self, device=None) -> Module:
        """`to("cuda")` (`cuda:N` for `device=N`): parameters and buffers on a CUDA device, in place."""
        return self.to(backend.cuda_device(device))

    def cpu(self) -> Module:
        """`to("cpu")`: parameters and buffers in host memory, in place."""
        return self.to("cpu")

    # ------------------------------------------------------------------ state dict
    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> OrderedDict[str, np.ndarray]:
        """Every parameter and persistent buffer by dotted key, in registration order.

        Values are host NumPy arrays whatever the device, so files stay device-free: on the
        CPU the arrays themselves (shared, not copied, as in PyTorch), on a CUDA device host
        copies. With `keep_vars=True` the Tensors (on their device).
        """
        out: OrderedDict = OrderedDict()
        for module_prefix, module in self.named_modules(prefix=prefix.rstrip(".")):
            dotted = f"{module_prefix}." if module_prefix else ""
            for name, p in module._parameters.items():
                if p is not None:
                    out[dotted + name] = p if keep_vars else backend.to_host(p.data)
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent_buffers:
                    out[dotted + name] = b if keep_vars else backend.to_host(b.data)
        return out

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy `state_dict` values (arrays or Tensors, on any device) into the parameters and
        buffers, in place, each onto its current device and dtype (bumping their versions: a
        graph recorded before the load can no longer backward).

        Everything is checked before anything is written: a key with the wrong shape always
        raises (naming the key and both shapes); with `strict=True` missing or unexpected
        keys raise an error that lists them. Returns the missing and unexpected keys.
        """
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = []
        for key, target in own.items():
            if key in state_dict:
                value = _as_array(state_dict[key])
                if value.shape != target.data.shape:
                    problems.append(
                        f"size mismatch for {key}: copying a param with shape {value.shape}, "
                        f"the shape in the current model is {target.data.shape}"
                    )
        if strict and missing:
            problems.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
        if strict and unexpected:
            problems.append("Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
        if problems:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(problems))
        for key, target in own.items():
            if key in state_dict:
                target.data[...] = backend.to_device(_as_array(state_dict[key]), target.device)
                increment_version(target)
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ repr
    def extra_repr(self) -> str:
        """One line of this module's own settings, shown by `repr` (override in layers)."""
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, module in self._modules.items():
            body = repr(module).replace("\n", "\n  ")
            lines.append(f"({name}): {body}")
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        return f"{type(self).__name__}({extra}\n  " + "\n  ".join(lines) + "\n)"

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))
