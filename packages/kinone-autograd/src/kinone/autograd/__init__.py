"""kinone.autograd: define-by-run reverse-mode automatic differentiation on NumPy.

    >>> from kinone.autograd import tensor
    >>> x = tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    tensor([2., 4., 6.])
"""

import numpy as _np

from .__about__ import __version__

# tensor first: it binds the ops, which import Function, which imports Tensor.
from .tensor import Size, Tensor  # isort: skip
from . import cuda
from .backend import Device, device
from .creation import (
    BoolTensor,
    ByteTensor,
    CharTensor,
    DoubleTensor,
    FloatTensor,
    HalfTensor,
    IntTensor,
    LongTensor,
    ShortTensor,
    arange,
    as_tensor,
    cat,
    default_generator,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    logspace,
    manual_seed,
    maximum,
    minimum,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
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
from .ops import return_types
from .ops.gather_scatter import gather, masked_fill, scatter
from .ops.matmul import matmul, mm
from .ops.namespace import (
    abs, add, allclose, amax, amin, clamp, clip, clone, detach, div, eq, equal, exp, flatten, ge, gt,
    is_floating_point, is_tensor, le, log, log_softmax, logsumexp, lt, mean, mul, ne, neg, numel, permute, pow,
    relu, reshape, sigmoid, softmax, sqrt, square, squeeze, std, sub, sum, tanh, transpose, unsqueeze, var,
)
from .ops.reduction import cumsum, norm, prod
from .ops.shape import chunk, flip, narrow, roll, split, t
from .ops.sorting import argmax, argmin, argsort, max, min, sort, topk
from .ops.triangular import tril, triu
from .ops.unary_math import (
    acos, asin, atan, ceil, cos, cosh, floor, reciprocal, round, rsqrt, sign, sin, sinh, tan, trunc,
)
from .tracing import TraceRecord, register_apply_hook, trace
from .version import increment_version

# The dtype names of the torch namespace, as NumPy's (`tensor(x, dtype=kinone.autograd.float64)`;
# `t.dtype == kinone.autograd.float32`). `float` is float32 and `int` int32, as in PyTorch.
float32 = float = _np.float32
float64 = double = _np.float64
float16 = half = _np.float16
int64 = long = _np.int64
int32 = int = _np.int32
int16 = short = _np.int16
int8 = _np.int8
uint8 = _np.uint8
bool = _np.bool_

__all__ = [
    "BoolTensor",
    "ByteTensor",
    "CharTensor",
    "Device",
    "DoubleTensor",
    "FloatTensor",
    "Function",
    "GradcheckError",
    "HalfTensor",
    "IntTensor",
    "LongTensor",
    "ShortTensor",
    "Size",
    "Tensor",
    "TensorFunction",
    "TraceRecord",
    "__version__",
    "abs",
    "acos",
    "add",
    "allclose",
    "amax",
    "amin",
    "arange",
    "argmax",
    "argmin",
    "argsort",
    "as_tensor",
    "asin",
    "atan",
    "bool",
    "cat",
    "ceil",
    "chunk",
    "clamp",
    "clip",
    "clone",
    "cos",
    "cosh",
    "cuda",
    "cumsum",
    "default_generator",
    "detach",
    "device",
    "div",
    "double",
    "empty",
    "empty_like",
    "enable_grad",
    "eq",
    "equal",
    "exp",
    "eye",
    "flatten",
    "flip",
    "float",
    "float16",
    "float32",
    "float64",
    "floor",
    "from_numpy",
    "full",
    "full_like",
    "functions_in",
    "gather",
    "ge",
    "gradcheck",
    "gt",
    "half",
    "increment_version",
    "int",
    "int16",
    "int32",
    "int64",
    "int8",
    "is_floating_point",
    "is_grad_enabled",
    "is_tensor",
    "le",
    "linspace",
    "log",
    "log_softmax",
    "logspace",
    "logsumexp",
    "long",
    "lt",
    "manual_seed",
    "masked_fill",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "mm",
    "mul",
    "narrow",
    "ne",
    "neg",
    "no_grad",
    "norm",
    "numel",
    "once_differentiable",
    "ones",
    "ones_like",
    "permute",
    "pow",
    "prod",
    "rand",
    "rand_like",
    "randint",
    "randn",
    "randn_like",
    "randperm",
    "reciprocal",
    "register_apply_hook",
    "relu",
    "reshape",
    "return_types",
    "roll",
    "round",
    "rsqrt",
    "scatter",
    "set_grad_enabled",
    "short",
    "sigmoid",
    "sign",
    "sin",
    "sinh",
    "softmax",
    "sort",
    "split",
    "sqrt",
    "square",
    "squeeze",
    "stack",
    "std",
    "sub",
    "sum",
    "t",
    "tan",
    "tanh",
    "tensor",
    "to_dot",
    "topk",
    "trace",
    "transpose",
    "tril",
    "triu",
    "trunc",
    "uint8",
    "unbroadcast",
    "unsqueeze",
    "var",
    "where",
    "zeros",
    "zeros_like",
]
