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

`TensorFunction` is the other form, PyTorch's: forward and backward on Tensors,
`ctx.save_for_backward(*tensors)`, `ctx.saved_tensors`, non-tensor arguments passed through
(see its docstring). Its `apply` is its own: `Function.apply`, the hot path, is unchanged.
"""

from __future__ import annotations

import numpy as np

from . import tracing
from .backend import as_array, device_of, is_cuda_array
from .grad_mode import _state as _grad_state
from .grad_mode import no_grad
from .tensor import Tensor, _make_tensor
from .version import counter_of, saved_versions, share_view_counter


class Function:
    """Base class of every differentiable operation (see the module docstring)."""

    __slots__ = (
        "__dict__",
        "attrs",
        "edges",
        "input_dtypes",
        "input_shapes",
        "needs_input_grad",
        "saved_arrays",
        "saved_versions",
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
                raise TypeError(
                    f"{cls.__name__}: a differentiable op produced a non-floating output of dtype {data.dtype}"
                )
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
    return RuntimeError(
        f"{cls.__name__}: expected all inputs on one device; got {devices} "
        "(move them with .to(device), .cuda() or .cpu())"
    )


class _TensorFunction(Function):
    """A custom Function written the PyTorch way (public as `kinone.autograd.TensorFunction`):

        class Exp(TensorFunction):  # y = exp(x);  dL/dx = g * y

            @staticmethod
            def forward(ctx, x):
                result = x.exp()
                ctx.save_for_backward(result)
                return result

            @staticmethod
            def backward(ctx, grad_output):
                (result,) = ctx.saved_tensors
                return grad_output * result

        y = Exp.apply(x)

    As in PyTorch: forward runs under `no_grad` on the Tensors (and any other arguments) given
    to `apply`, and returns one Tensor; backward receives the output's gradient as a Tensor and
    returns one gradient (Tensor or None) per argument of forward, None for a non-tensor.
    `ctx.save_for_backward(*tensors)` keeps tensors (inputs, outputs or intermediates) and
    `ctx.saved_tensors` gives them back, refusing one changed in place since (its version moved).
    `ctx.needs_input_grad` has one flag per argument; `ctx.mark_non_differentiable(output)`
    returns an output that does not require grad.

    Not followed: several outputs (a Kinone graph node has one output: split the Function),
    `mark_dirty` (in-place custom Functions), and higher-order gradients (Kinone has no
    create_graph; backward runs under no_grad). The ONNX exporter refuses a custom Function,
    naming it.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        backward = cls.__dict__.get("backward")
        if backward is not None:  # the engine calls backward(node, array): adapt the user's Tensor form
            cls._tensor_backward = backward
            cls.backward = staticmethod(_run_tensor_backward)

    @classmethod
    def apply(cls, *args, **kwargs) -> Tensor:
        """Run `forward(ctx, *args, **kwargs)` under no_grad and, when grad mode is on and some
        Tensor argument requires grad, record the call as a node of the graph."""
        tensors = tuple(a for a in args if isinstance(a, Tensor))
        if len({type(t.data) for t in tensors}) > 1:
            raise _mixed_devices_error(cls, tensors)
        record = _grad_state.enabled and any(t.requires_grad for t in tensors)
        ctx = cls.__new__(cls)
        ctx.saved_arrays, ctx.saved_versions, ctx.attrs = (), None, kwargs
        ctx.needs_input_grad = tuple(record and isinstance(a, Tensor) and a.requires_grad for a in args)
        ctx._tensor_arguments = tuple(isinstance(a, Tensor) for a in args)
        ctx._saved_versions = ()
        ctx._non_differentiable = ()
        with no_grad():
            result = cls.forward(ctx, *args, **kwargs)
        _check_output(cls, result)
        record = record and result.data.dtype.kind in "fc" and not any(result is t for t in ctx._non_differentiable)
        out = _make_tensor(result.data, record, ctx if record else None)
        out._version_counter = counter_of(result)  # a saved output is version-checked through out
        if record:
            ctx.edges = tuple(t.grad_fn if t.grad_fn is not None else (t if t.requires_grad else None) for t in tensors)
            ctx.input_shapes = tuple(t.data.shape for t in tensors)
            ctx.input_dtypes = tuple(t.data.dtype for t in tensors)
        if tracing._apply_hooks:
            arguments = tuple(a for a in args if not isinstance(a, Tensor))
            tracing._notify(cls, tensors, out, {**kwargs, "arguments": arguments} if arguments else kwargs)
        return out

    def save_for_backward(self, *tensors) -> None:
        """Keep `tensors` (or None) for backward, with their versions."""
        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(
                    f"{type(self).__name__}.save_for_backward: argument {i} is a {type(t).__name__}; "
                    "only Tensors (or None) can be saved, keep other values as attributes of ctx"
                )
        self.saved_arrays = tuple(None if t is None else t.data for t in tensors)
        self._saved_versions = tuple(None if t is None else (counter_of(t), counter_of(t).value) for t in tensors)

    @property
    def saved_tensors(self) -> tuple:
        """The tensors given to `save_for_backward`; an error if one changed in place since."""
        arrays = self.saved
        for i, (array, record) in enumerate(zip(arrays, self._saved_versions)):
            if record is not None and record[0].value != record[1]:
                name = type(self).__name__
                raise RuntimeError(
                    f"{name}: one of the variables needed for gradient computation has been modified by an in-place "
                    f"operation: saved tensor {i} of shape {tuple(array.shape)} was saved at version {record[1]}; "
                    f"it is now at version {record[0].value}"
                )
        return tuple(None if a is None else _make_tensor(a, False, None) for a in arrays)

    def mark_non_differentiable(self, *tensors) -> None:
        """The output among `tensors` will not require grad (an index, a mask)."""
        self._non_differentiable += tensors

    def set_materialize_grads(self, value: bool) -> None:
        """Accepted for PyTorch code; with one output per node, backward always gets a gradient Tensor."""

    def mark_dirty(self, *tensors) -> None:
        raise NotImplementedError(
            f"{type(self).__name__}.mark_dirty: custom Functions that change their inputs in "
            "place are not supported in Kinone; return a new tensor"
        )


TensorFunction = _TensorFunction


def once_differentiable(backward):
    """PyTorch's decorator for a backward that is not itself differentiable: every Kinone
    backward is (there is no create_graph), so it returns `backward` unchanged."""
    return backward


def _check_output(cls, result) -> None:
    if isinstance(result, (tuple, list)):
        raise TypeError(
            f"{cls.__name__}.forward returned {len(result)} outputs; a Kinone graph node has one output "
            "(split it into one Function per output)"
        )
    if not isinstance(result, Tensor):
        raise TypeError(f"{cls.__name__}.forward must return a Tensor, got {type(result).__name__}")


def _run_tensor_backward(ctx, grad):
    """The engine's call of a TensorFunction's backward: wraps the gradient in a Tensor, runs the
    user's backward under no_grad, and returns the arrays of the gradients for Tensor arguments."""
    cls = type(ctx)
    if isinstance(grad, Tensor):  # called directly, as PyTorch's Function.backward
        return cls._tensor_backward(ctx, grad)
    with no_grad():
        grads = cls._tensor_backward(ctx, _make_tensor(grad, False, None))
    if not isinstance(grads, tuple):
        grads = (grads,)
    flags = ctx._tensor_arguments
    if len(grads) < len(flags) or any(g is not None for g in grads[len(flags) :]):
        raise RuntimeError(
            f"{cls.__name__}.backward returned {len(grads)} gradients; expected {len(flags)}, "
            "one per argument of forward (None for a non-tensor)"
        )
    arrays = []
    for position, (is_tensor, g) in enumerate(zip(flags, grads)):
        if not is_tensor:
            if g is not None:
                raise RuntimeError(
                    f"{cls.__name__}.backward returned a gradient for argument {position}, which is "
                    "not a Tensor; return None there"
                )
        elif g is None:
            arrays.append(None)
        else:
            arrays.append(g.data if isinstance(g, Tensor) else as_array(g, grad))
    return tuple(arrays)
