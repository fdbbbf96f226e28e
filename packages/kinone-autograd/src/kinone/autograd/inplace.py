"""In-place methods of Tensor (a base class of Tensor, holding no state of its own).

`add_ sub_ mul_ div_ zero_ fill_ copy_ clamp_ uniform_ normal_` and `+= -= *= /=` change the
tensor's own array, as in PyTorch 2.13:

- under `no_grad` they are plain array updates (a manual SGD step: `p -= lr * p.grad`);
- in grad mode, on a leaf that requires grad (or a view of one), they raise: the gradient of
  what was computed from the old value would be lost;
- in grad mode, on a non-leaf (or when the other operand requires grad), the op is recorded:
  the tensor's `grad_fn` becomes the in-place op's node, whose first edge is the tensor's
  previous history (`kinone.autograd.ops.inplace`);
- each bumps the tensor's version (`version.py`), so a backward through a node that saved the
  old array raises instead of giving a wrong gradient;
- the result keeps the tensor's dtype; an operand of a higher kind (a float into an int tensor,
  an int into a bool one) is refused, as torch refuses it. `fill_` and `copy_` convert.

Not followed: an in-place change of a *view* of a tensor that requires grad (PyTorch rewrites
the base's history with CopySlices; Kinone refuses with a clear error).
"""

from __future__ import annotations

import numbers

from . import tracing
from .grad_mode import _state as _grad_state
from .version import increment_version, note_saved_output, saved_versions

# numpy dtype kinds, in the order in which torch lets a result be cast into a tensor.
_KIND_RANK = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}
_KIND_NAME = {"b": "Bool", "u": "Long", "i": "Long", "f": "Float", "c": "ComplexFloat"}

_functions = None  # kinone.autograd.ops.inplace, imported on first use (it imports Tensor)
_view_functions = ()
_Tensor = _normalize_index = None  # from tensor.py


def _ops():
    global _functions, _view_functions, _Tensor, _normalize_index
    if _functions is None:
        from .ops import inplace
        from .ops.indexing import GetItem
        from .ops.shape import Expand, Permute, Reshape
        from .tensor import Tensor as _Tensor
        from .tensor import _normalize_index

        _functions, _view_functions = inplace, (GetItem, Reshape, Permute, Expand)
    return _functions


class InPlaceMethods:
    __slots__ = ()

    # ------------------------------------------------------------------ arithmetic
    def add_(self, other, *, alpha=1):
        """self ← self + alpha·other."""
        other = _operand(self, "add_", other, alpha)
        return apply_in_place("add_", _ops().AddInPlace, self, (other,), {} if alpha == 1 else {"alpha": alpha})

    def sub_(self, other, *, alpha=1):
        """self ← self - alpha·other."""
        other = _operand(self, "sub_", other, alpha)
        if other.data.dtype.kind == "b":
            raise RuntimeError(
                "sub_: subtraction with a bool tensor is not supported (as in PyTorch); "
                "to invert a mask use logical_not"
            )
        return apply_in_place("sub_", _ops().AddInPlace, self, (other,), {"alpha": -alpha})

    def mul_(self, other):
        """self ← self·other."""
        return apply_in_place("mul_", _ops().MulInPlace, self, (_operand(self, "mul_", other),), {})

    def div_(self, other, *, rounding_mode=None):
        """self ← self / other (true division: an integer tensor is refused, as in PyTorch)."""
        if rounding_mode is not None:
            raise NotImplementedError(
                f"div_: rounding_mode={rounding_mode!r} is not supported in Kinone; "
                "only true division (rounding_mode=None)"
            )
        other = _operand(self, "div_", other, result_kind="f")
        return apply_in_place("div_", _ops().DivInPlace, self, (other,), {})

    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

    # ------------------------------------------------------------------ overwriting
    def zero_(self):
        """self ← 0."""
        return self.fill_(0)

    def fill_(self, value):
        """self ← value everywhere (a number, or a 0-d tensor through which the gradient flows)."""
        if isinstance(value, type(self)):
            if value.ndim != 0:
                raise RuntimeError(
                    f"fill_: only a 0-dimensional value tensor is supported, got shape {tuple(value.shape)}"
                )
            return apply_in_place("fill_", _ops().FillInPlace, self, (value,), {})
        if not isinstance(value, numbers.Number):
            raise TypeError(f"fill_: value must be a number or a 0-d tensor, got {type(value).__name__}")
        return apply_in_place("fill_", _ops().FillInPlace, self, (), {"fill": value})

    def copy_(self, src, non_blocking: bool = False):
        """self ← src, broadcast to self's shape and converted to self's dtype (and device)."""
        src = src if isinstance(src, type(self)) else type(self)(src)
        _check_broadcast("copy_", self, src)
        if src.device != self.device:
            src = src.to(self.device)
        return apply_in_place("copy_", _ops().CopyInPlace, self, (src,), {})

    def clamp_(self, min=None, max=None):
        """self ← min(max(self, min), max); the gradient passes where min <= self <= max."""
        if min is None and max is None:
            raise RuntimeError("clamp_: at least one of 'min' or 'max' must not be None")
        for bound in (min, max):
            if bound is not None and not isinstance(bound, numbers.Number):
                raise TypeError(f"clamp_: min and max must be numbers in Kinone, got {type(bound).__name__}")
            if bound is not None:
                _check_kind("clamp_", self, _number_kind(bound))
        return apply_in_place("clamp_", _ops().ClampInPlace, self, (), {"min": min, "max": max})

    clip_ = clamp_

    # ------------------------------------------------------------------ indexing
    def __setitem__(self, index, value):
        """self[index] ← value, broadcast to the indexed region and cast to self's dtype (a float
        into an integer tensor truncates, as in PyTorch). Recorded, as the other in-place ops,
        when self or value requires grad in grad mode; an integer or boolean tensor has no
        gradient, so a value that requires grad is written without one (as PyTorch)."""
        function = _ops().SetItemInPlace
        apply_in_place("setitem", function, self, (_setitem_value(self, value),), {"index": _normalize_index(index)})

    # ------------------------------------------------------------------ random
    def uniform_(self, from_=0.0, to=1.0, *, generator=None):
        """self ← draws of U[from_, to) (from the device's generator unless one is given)."""
        _check_random("uniform_", self)
        if from_ > to:
            raise RuntimeError(f"uniform_: expects a [from, to) range, but found from={from_} > to={to}")
        attrs = {"distribution": "uniform", "a": from_, "b": to, "generator": generator}
        return apply_in_place("uniform_", _ops().RandomInPlace, self, (), attrs)

    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        """self ← draws of N(mean, std²) (from the device's generator unless one is given)."""
        _check_random("normal_", self)
        if std < 0:
            raise RuntimeError(f"normal_: expects std >= 0.0, but found std {std}")
        attrs = {"distribution": "normal", "a": mean, "b": std, "generator": generator}
        return apply_in_place("normal_", _ops().RandomInPlace, self, (), attrs)


# ---------------------------------------------------------------------- applying
def apply_in_place(name: str, function: type, tensor, others: tuple, attrs: dict):
    """Run `function` on `tensor`'s own array (see the module docstring); returns `tensor`."""
    grad_on = _grad_state.enabled
    if grad_on and tensor.requires_grad:
        _check_can_change(name, tensor)
    for other in others:
        if type(other.data) is not type(tensor.data):
            raise RuntimeError(
                f"{name}: expected both tensors on one device; got {tensor.device} and {other.device} "
                "(move one with .to(device), .cuda() or .cpu())"
            )
    inputs = (tensor, *others)
    record = grad_on and any(t.requires_grad for t in inputs)
    ctx = function.__new__(function)
    ctx.saved_arrays = ()
    ctx.attrs = attrs
    ctx.needs_input_grad = tuple(t.requires_grad for t in inputs) if record else (False,) * len(inputs)
    if tensor.grad_fn is not None:
        note_saved_output(tensor.grad_fn, tensor)  # its node may have saved the array about to change
    function.forward(ctx, tensor.data, *(t.data for t in others), **attrs)
    if record:
        ctx.edges = tuple(t.grad_fn if t.grad_fn is not None else (t if t.requires_grad else None) for t in inputs)
        ctx.input_shapes = tuple(t.data.shape for t in inputs)
        ctx.input_dtypes = tuple(t.data.dtype for t in inputs)
        ctx.saved_versions = saved_versions(ctx.saved_arrays, inputs) if ctx.saved_arrays else None
        tensor.grad_fn = ctx
        tensor.requires_grad = True
    increment_version(tensor)
    if tracing._apply_hooks:
        tracing._notify(function, inputs, tensor, attrs)
    return tensor


def _check_can_change(name: str, tensor) -> None:
    """In grad mode, a tensor that requires grad may change in place only if it is a non-leaf
    that is not a view (PyTorch's rule for leaves; Kinone's for views)."""
    node = tensor.grad_fn
    if node is None:
        raise RuntimeError(
            f"{name}: a leaf tensor that requires grad is being used in an in-place operation (as PyTorch refuses it); "
            "change parameters inside `with no_grad():`, or change a clone()"
        )
    _ops()
    if isinstance(node, _view_functions) and tensor.data.base is not None:
        edges = node.edges or (None,)
        if edges[0] is not None and not hasattr(edges[0], "edges"):  # the base is a leaf tensor
            raise RuntimeError(
                f"{name}: a view of a leaf tensor that requires grad is being used in an in-place "
                "operation (as PyTorch refuses it); change it inside `with no_grad():`"
            )
        raise RuntimeError(
            f"{name}: in-place change of a view ({type(node).__name__}) of a tensor that requires grad is not supported "
            "in Kinone (PyTorch rewrites the base's history, Kinone does not); clone() the view first, or change the base "
            "(y[index] += v: write y[index] = y[index] + v)"
        )


# ---------------------------------------------------------------------- dtypes and shapes
def _operand(tensor, name: str, other, alpha=1, result_kind: str | None = None):
    """`other` as a Tensor (Python numbers take the tensor's dtype), checked against torch's
    in-place casting rule and broadcast to the tensor's shape."""
    other = tensor._operand(other)  # 1.5 into an int tensor becomes a float32 tensor: refused below
    kind = other.data.dtype.kind
    if result_kind is not None and _KIND_RANK[result_kind] > _KIND_RANK[kind]:
        kind = result_kind
    _check_kind(name, tensor, kind)
    if alpha != 1:
        if tensor.data.dtype.kind in "iub" and isinstance(alpha, float):
            raise RuntimeError(
                f"{name}: for integral input tensors, argument alpha must not be a floating point number"
            )
        _check_kind(name, tensor, _number_kind(alpha))
    _check_broadcast(name, tensor, other)
    return other


def _setitem_value(tensor, value):
    """A setitem value as a Tensor: a number takes `tensor`'s dtype and device; an array, a list or
    a 0-d tensor is moved onto its device (another tensor on another device is refused, as
    PyTorch); a Tensor going into an integer or boolean tensor is cut from the graph (no
    gradient reaches it there)."""
    if isinstance(value, numbers.Number):
        return tensor._operand(value)
    if not isinstance(value, _Tensor):
        value = _Tensor(value)
        return value if value.device == tensor.device else value.to(tensor.device)
    if value.ndim == 0 and value.device != tensor.device:
        value = value.to(tensor.device)
    return value.detach() if tensor.data.dtype.kind not in "fc" and value.requires_grad else value


def _number_kind(value) -> str:
    if isinstance(value, bool):
        return "b"
    if isinstance(value, numbers.Integral):
        return "i"
    return "f" if isinstance(value, numbers.Real) else "c"


def _check_kind(name: str, tensor, kind: str) -> None:
    own = tensor.data.dtype.kind
    if _KIND_RANK[kind] > _KIND_RANK[own]:
        raise RuntimeError(
            f"{name}: result type {_KIND_NAME[kind]} can't be cast to the desired output type {tensor.data.dtype} "
            "(an in-place op keeps the tensor's dtype, as in PyTorch)"
        )


def _check_broadcast(name: str, tensor, other) -> None:
    shape, other_shape = tuple(tensor.data.shape), tuple(other.data.shape)
    if other_shape == shape:
        return
    ok = len(other_shape) <= len(shape) and all(o in (1, s) for o, s in zip(reversed(other_shape), reversed(shape)))
    if not ok:
        raise RuntimeError(
            f"{name}: the other operand's shape {other_shape} does not broadcast to the tensor's "
            f"shape {shape} (an in-place result keeps the tensor's shape)"
        )


def _check_random(name: str, tensor) -> None:
    if tensor.data.dtype.kind not in "f":
        raise NotImplementedError(
            f"{name}: only floating-point tensors can be filled with random draws, got dtype {tensor.data.dtype}"
        )
