"""`Function`: one differentiable operation, and the graph node it leaves behind.

A Function subclass defines two static methods on NumPy arrays:

    forward(ctx, *arrays, **attrs) -> array
    backward(ctx, grad) -> one gradient (array or None) per array input

`ctx` is the instance of the subclass created by `apply`; it is also the graph node. It
keeps only what backward needs: the arrays given to `ctx.save_for_backward(...)`, any
small values the forward stored on it (shapes, axes), the attributes, and `edges` to the
nodes (or leaf tensors) that produced its inputs. It never holds the input tensors, so an
activation is freed as soon as nothing saved it; for each saved array that is (a view of)
a leaf input's own array it keeps that tensor's version counter and version, so backward
can refuse an array changed in place since (`version.py`).

Backward always returns gradients shaped like the *output* of broadcasting; the engine
reduces them to each input's shape (`unbroadcast`) and casts them to the input's dtype, so
no op repeats that logic. Backward must not modify `grad` in place (the same array may be
passed on to several nodes), and returns new arrays or views of `grad`, never an array it
keeps elsewhere: a leaf may adopt a returned array as its `.grad` without copying it.
"""

from __future__ import annotations

import numpy as np

from . import tracing
from .backend import device_of, is_cuda_array
from .grad_mode import _state as _grad_state
from .tensor import Tensor, _make_tensor
from .version import saved_versions, share_view_counter


class Function:
    """Base class of every differentiable operation (see the module docstring)."""

    __slots__ = (
        "saved_arrays",
        "saved_versions",
        "needs_input_grad",
        "edges",
        "input_shapes",
        "input_dtypes",
        "attrs",
        "__dict__",
    )

    # ------------------------------------------------------------------ subclass API
    @staticmethod
    def forward(ctx, *arrays, **attrs):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):  # pragma: no cover - abstract
        raise NotImplementedError

    def save_for_backward(self, *arrays) -> None:
        """Keep `arrays` until backward has run (freed afterwards unless retain_graph)."""
        self.saved_arrays = arrays

    @property
    def saved(self) -> tuple:
        """The arrays given to `save_for_backward`; an error once the graph was freed."""
        arrays = self.saved_arrays
        if arrays is None:
            raise RuntimeError(
                f"{type(self).__name__}: trying to backward through the graph a second time "
                "(its saved arrays were freed after the first backward); "
                "call backward(retain_graph=True) the first time if you need to"
            )
        return arrays

    # ------------------------------------------------------------------ running
    @classmethod
    def apply(cls, *inputs, **attrs) -> Tensor:
        """Run `forward` on the inputs' arrays and, when grad mode is on and some input
        requires grad, record this call as a node of the graph."""
        # One explicit loop instead of several generator expressions: this is the per-op
        # overhead of every model (measured: 4.6 -> 3.1 us per recorded op).
        record = False
        array_type = None
        for t in inputs:
            if not isinstance(t, Tensor):
                raise TypeError(
                    f"{cls.__name__}: every positional input must be a Tensor, got {type(t).__name__}; "
                    "pass non-tensor options as keyword attributes"
                )
            if t.requires_grad:
                record = _grad_state.enabled
            if type(t.data) is not array_type:  # NumPy and CuPy arrays: two devices
                if array_type is not None:
                    raise _mixed_devices_error(cls, inputs)
                array_type = type(t.data)
        ctx = cls.__new__(cls)
        ctx.saved_arrays = ()
        ctx.attrs = attrs
        arrays = [t.data for t in inputs]
        if record:
            needs, edges, shapes, dtypes = [], [], [], []
            for t in inputs:
                needs.append(t.requires_grad)
                edges.append(t.grad_fn if t.grad_fn is not None else (t if t.requires_grad else None))
                shapes.append(t.data.shape)
                dtypes.append(t.data.dtype)
            ctx.needs_input_grad = tuple(needs)
        else:
            ctx.needs_input_grad = (False,) * len(inputs)
        data = cls.forward(ctx, *arrays, **attrs)
        if type(data) is not np.ndarray and not is_cuda_array(data):
            data = np.asarray(data)  # a NumPy scalar from a CPU reduction
        if record:
            if data.dtype.kind not in "fc":
                raise TypeError(f"{cls.__name__}: a differentiable op produced a non-floating output of dtype {data.dtype}")
            ctx.edges = tuple(edges)
            ctx.input_shapes = tuple(shapes)
            ctx.input_dtypes = tuple(dtypes)
            out = _make_tensor(data, True, ctx)
            # The versions of what was saved, checked by backward (see version.py).
            saved = ctx.saved_arrays
            ctx.saved_versions = saved_versions(saved, inputs) if saved else None
        else:
            out = _make_tensor(data, False, None)
        if data.base is not None:  # a view of an input shares its version counter
            share_view_counter(out, inputs)
        if tracing._apply_hooks:
            tracing._notify(cls, inputs, out, attrs)
        return out

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


def _mixed_devices_error(cls, inputs) -> RuntimeError:
    devices = ", ".join(f"input {i} on {device_of(t.data)}" for i, t in enumerate(inputs))
    return RuntimeError(f"{cls.__name__}: expected all inputs on one device; got {devices} "
                        "(move them with .to(device), .cuda() or .cpu())")
