"""kinone.autograd: define-by-run reverse-mode automatic differentiation on NumPy.

    >>> from kinone.autograd import tensor
    >>> x = tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    tensor([2., 4., 6.])
"""

from .__about__ import __version__

# tensor first: it binds the ops, which import Function, which imports Tensor.
from .tensor import Tensor  # isort: skip
from . import cuda
from .backend import Device, device
from .creation import (
    arange,
    cat,
    default_generator,
    full,
    full_like,
    manual_seed,
    maximum,
    minimum,
    ones,
    ones_like,
    rand,
    randn,
    stack,
    tensor,
    where,
    zeros,
    zeros_like,
)
from .engine import unbroadcast
from .function import Function, TensorFunction, once_differentiable
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import GradcheckError, functions_in, gradcheck
from .graph import to_dot
from .ops.matmul import matmul
from .tracing import TraceRecord, register_apply_hook, trace
from .version import increment_version

__all__ = [
    "Device",
    "Function",
    "GradcheckError",
    "Tensor",
    "TensorFunction",
    "TraceRecord",
    "__version__",
    "arange",
    "cat",
    "cuda",
    "default_generator",
    "device",
    "enable_grad",
    "full",
    "full_like",
    "functions_in",
    "gradcheck",
    "increment_version",
    "is_grad_enabled",
    "manual_seed",
    "matmul",
    "maximum",
    "minimum",
    "no_grad",
    "once_differentiable",
    "ones",
    "ones_like",
    "rand",
    "randn",
    "register_apply_hook",
    "set_grad_enabled",
    "stack",
    "tensor",
    "to_dot",
    "trace",
    "unbroadcast",
    "where",
    "zeros",
    "zeros_like",
]
