"""The functions of the torch namespace that are Tensor methods called as functions:
`kinone.autograd.exp(x)` is `x.exp()`, `kinone.autograd.sum(x, 1)` is `x.sum(1)`, with the
method's signature and docstring (PyTorch's `torch.exp`, `torch.sum`, ...).

The families' own functions (`sin`, `max`, `sort`, `gather`, `prod`, `flip`, ...) are defined
once in their modules and serve both forms; this module makes the function form of the
methods that Tensor defines itself.
"""

from __future__ import annotations

import numbers

from ..backend import get_array_module
from ..tensor import Tensor


def _method(name: str):
    """`name(input, *args, **kwargs)`: Tensor's method `name` called on `input`."""
    method = getattr(Tensor, name)

    def function(input, *args, **kwargs):
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: expected a Tensor as input, got {type(input).__name__}")
        return method(input, *args, **kwargs)

    function.__name__ = function.__qualname__ = name
    function.__module__ = "kinone.autograd"
    function.__doc__ = f"`{name}(input, ...)` is `input.{name}(...)`." + (
        f"\n\n{method.__doc__}" if method.__doc__ else ""
    )
    return function


# Elementwise and arithmetic.
abs = _method("abs")
exp = _method("exp")
log = _method("log")
sqrt = _method("sqrt")
tanh = _method("tanh")
sigmoid = _method("sigmoid")
relu = _method("relu")
clamp = _method("clamp")
clip = _method("clip")
neg = _method("neg")
square = _method("square")
add = _method("add")
sub = _method("sub")
mul = _method("mul")
div = _method("div")
# Comparisons.
eq = _method("eq")
ne = _method("ne")
lt = _method("lt")
le = _method("le")
gt = _method("gt")
ge = _method("ge")
equal = _method("equal")
# Reductions.
sum = _method("sum")
mean = _method("mean")
var = _method("var")
std = _method("std")
amax = _method("amax")
amin = _method("amin")
logsumexp = _method("logsumexp")
softmax = _method("softmax")
log_softmax = _method("log_softmax")
# Shapes and copies.
reshape = _method("reshape")
permute = _method("permute")
transpose = _method("transpose")
squeeze = _method("squeeze")
unsqueeze = _method("unsqueeze")
flatten = _method("flatten")
clone = _method("clone")
detach = _method("detach")
numel = _method("numel")


def pow(input, exponent):
    """`input ** exponent`; either side may be a number (torch.pow)."""
    if isinstance(input, numbers.Number):
        if not isinstance(exponent, Tensor):
            raise TypeError(
                f"pow: expected a Tensor on one side, got {type(input).__name__} and {type(exponent).__name__}"
            )
        return exponent.__rpow__(input)
    if not isinstance(input, Tensor):
        raise TypeError(f"pow: expected a Tensor as input, got {type(input).__name__}")
    return input.pow(exponent)


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def is_floating_point(input: Tensor) -> bool:
    return input.dtype.kind == "f"


def allclose(input: Tensor, other: Tensor, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
    """|input - other| <= atol + rtol * |other| everywhere (torch.allclose)."""
    if type(input.data) is not type(other.data):
        raise RuntimeError(f"allclose: expected both tensors on one device; got {input.device} and {other.device}")
    xp = get_array_module(input.data)
    return bool(xp.allclose(input.data, other.data, rtol=rtol, atol=atol, equal_nan=equal_nan))
