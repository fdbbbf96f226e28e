"""`Tensor`: a NumPy array with a gradient and a link to the op that made it.

dtype rules: Python floats (and lists of them) become float32, Python
ints int64, bools bool; NumPy arrays keep their dtype (float64 survives, as gradcheck needs).
A Python scalar meeting a tensor takes the tensor's floating dtype, so `x * 2.0` stays
float32, as in PyTorch. Only floating-point tensors can require grad.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import backend
from .inplace import InPlaceMethods
from .version import counter_of, increment_version

DEFAULT_FLOAT = np.float32


def _to_array(data, dtype=None) -> np.ndarray:
    """Convert user data to an array following Kinone's dtype rules (copies Python data,
    never copies an ndarray of the right dtype; a CUDA array stays on its device)."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, np.ndarray) or backend.is_cuda_array(data):
        return data if dtype is None else data.astype(dtype, copy=False)
    array = np.asarray(data, dtype=dtype)
    if dtype is None and array.dtype == np.float64 and not isinstance(data, np.floating):
        array = array.astype(DEFAULT_FLOAT)  # Python floats -> float32
    return array


def _check_can_require_grad(array: np.ndarray) -> None:
    if array.dtype.kind not in "fc":
        raise TypeError(f"requires_grad: only floating-point tensors can require gradients; got dtype {array.dtype}")


def _make_tensor(data: np.ndarray, requires_grad: bool, grad_fn) -> Tensor:
    """Fast constructor for op outputs: no conversion, no checks."""
    t = Tensor.__new__(Tensor)
    t.data = data
    t.grad = None
    t.requires_grad = requires_grad
    t.grad_fn = grad_fn
    t._version_counter = None
    return t


def _dims(dim):
    return dim if dim is None or isinstance(dim, int) else tuple(dim)


class Size(tuple):
    """A tensor's shape, as PyTorch's `torch.Size`: a tuple of ints with `numel()`."""

    def numel(self) -> int:
        count = 1
        for size in self:
            count *= size
        return count

    def __repr__(self) -> str:
        return f"Size({list(self)})"


def parse_to_args(args, device=None, dtype=None):
    """The arguments of `Tensor.to` and `Module.to` (`to(device)`, `to(dtype)`, `to(device,
    dtype)`, `to(tensor)`, keywords) -> (Device or None, numpy dtype or None)."""
    for arg in args:
        if isinstance(arg, Tensor):
            device, dtype = arg.device, arg.dtype
        elif isinstance(arg, (str, backend.Device)):
            device = arg
        else:
            dtype = arg
    return (None if device is None else backend.Device(device)), (None if dtype is None else np.dtype(dtype))


class Tensor(InPlaceMethods):
    """An n-dimensional array that records the operations applied to it for backward.

    `.data` is the wrapped `numpy.ndarray`; `.grad` is a `Tensor` (or None) filled by
    `backward()`; `.grad_fn` is the Function node that produced it (None for leaves).
    """

    # `_post_accumulate_hooks` is set only on a tensor that has hooks (read with getattr).
    __slots__ = (
        "__weakref__",
        "_post_accumulate_hooks",
        "_version_counter",
        "data",
        "grad",
        "grad_fn",
        "requires_grad",
    )
    # NumPy must defer to our reflected operators: `ndarray * Tensor` -> Tensor.__rmul__.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data = _to_array(data, dtype)
        self.grad = None
        self.grad_fn = None
        self._version_counter = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ------------------------------------------------------------------ basics
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def size(self, dim=None):
        """The shape as a `Size` (a tuple), or the length of one dim (as PyTorch's `size()`;
        NumPy's element count is `numel()`)."""
        shape = self.data.shape
        if dim is None:
            return Size(shape)
        if not -len(shape) <= dim < len(shape):
            raise IndexError(f"size: dim {dim} is out of range for a tensor of {len(shape)} dims (shape {shape})")
        return shape[dim]

    def numel(self) -> int:
        """Number of elements."""
        return self.data.size

    nelement = numel

    def dim(self) -> int:
        return self.data.ndim

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied) on the CPU, as PyTorch's `.numpy()`; a
        host copy for a tensor on a CUDA device (as PyTorch's `.cpu().numpy()`)."""
        return backend.to_host(self.data)

    # ------------------------------------------------------------------ devices
    @property
    def device(self) -> backend.Device:
        """Where the array lives: `device('cpu')` or `device('cuda:N')`."""
        return backend.device_of(self.data)

    @property
    def is_cuda(self) -> bool:
        return backend.is_cuda_array(self.data)

    @property
    def is_cpu(self) -> bool:
        return not backend.is_cuda_array(self.data)

    # PyTorch's other device kinds (Intel GPUs, Apple's Metal): never in Kinone.
    is_xpu = is_mps = property(lambda self: False, doc="Always False: Kinone has no XPU or MPS device.")

    def cuda(self, device=None) -> Tensor:
        """This tensor on a CUDA device (`cuda:0` unless given); itself if already there."""
        return self.to(backend.cuda_device(device))

    def cpu(self) -> Tensor:
        """This tensor on the CPU; itself if already there."""
        return self.to("cpu")

    def item(self):
        if self.data.size != 1:
            raise ValueError(
                f"item: only a one-element tensor can be converted to a Python scalar; got shape {self.shape}"
            )
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data (and its version counter), cut from the graph."""
        t = _make_tensor(self.data, False, None)
        t._version_counter = counter_of(self)
        return t

    @property
    def _version(self) -> int:
        """How many in-place changes this tensor's array has had (PyTorch's `t._version`;
        see `version.py`). Writes to `.data` by the user are not counted."""
        counter = self._version_counter
        return 0 if counter is None else counter.value

    def _bump_version(self) -> None:
        """Record one in-place change of this tensor's array (`increment_version(self)`)."""
        increment_version(self)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad:
            _check_can_require_grad(self.data)
        elif self.grad_fn is not None:
            raise RuntimeError("requires_grad_: cannot turn off gradients of a non-leaf tensor; use .detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def zero_grad(self) -> None:
        """Drop the accumulated gradient (sets `.grad` to None, as PyTorch's set_to_none)."""
        self.grad = None

    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate the gradient of this tensor into the `.grad` of every leaf it depends on."""
        _engine.backward(self, grad, retain_graph)

    def register_post_accumulate_grad_hook(self, hook):
        """Call `hook(tensor)` in each backward pass, as soon as this leaf's gradient of the
        pass is complete and added into `.grad` (PyTorch's name and contract; while the rest
        of backward still runs: data parallelism starts reducing a gradient there). Returns a
        handle whose `remove()` unregisters it."""
        if self.grad_fn is not None:
            raise RuntimeError(
                "register_post_accumulate_grad_hook: only leaf tensors accumulate gradients; this tensor has a grad_fn"
            )
        if not self.requires_grad:
            raise RuntimeError("register_post_accumulate_grad_hook: the tensor does not require grad")
        return _engine.add_post_accumulate_hook(self, hook)

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError(f"bool: the truth value of a tensor with {self.data.size} elements is ambiguous")
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iub":
            raise TypeError(f"only integer tensors can be used as an index, got dtype {self.dtype}")
        return int(self.item())

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        body = np.array2string(backend.to_host(self.data), separator=", ", prefix="tensor(", precision=4)
        extras = [] if type(self.data) is np.ndarray else [f"device='{self.device}'"]
        if self.data.dtype not in (np.float32, np.int64, np.bool_):
            extras.append(f"dtype={self.data.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{type(self.grad_fn).__name__}Backward>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    # ------------------------------------------------------------------ dtype
    def to(self, *args, device=None, dtype=None) -> Tensor:
        """`to(dtype)`, `to(device)`, `to(device, dtype)` or `to(other_tensor)`, as PyTorch: a
        copy on another device, or a cast (both differentiable between floating dtypes);
        `self` when nothing changes."""
        device, dtype = parse_to_args(args, device, dtype)
        out = self
        if device is not None and device != self.device:
            out = ToDevice.apply(self, device=device)
        return out if dtype is None else out._cast(dtype)

    def _cast(self, dtype) -> Tensor:
        dtype = np.dtype(dtype)
        if dtype == self.data.dtype:
            return self
        if dtype.kind not in "fc":  # an integer or boolean result has no gradient
            return _make_tensor(self.data.astype(dtype), False, None)
        return Cast.apply(self, dtype=dtype)

    def float(self) -> Tensor:
        return self.to(np.float32)

    def double(self) -> Tensor:
        return self.to(np.float64)

    def long(self) -> Tensor:
        return self.to(np.int64)

    def int(self) -> Tensor:
        """int32, as PyTorch's `int()`."""
        return self.to(np.int32)

    def bool(self) -> Tensor:
        return self.to(np.bool_)

    def half(self) -> Tensor:
        return self.to(np.float16)

    def type_as(self, other: Tensor) -> Tensor:
        return self.to(other.dtype)

    # ------------------------------------------------------------------ arithmetic
    def _operand(self, other) -> Tensor:
        """Turn the other side of a binary op into a Tensor; Python scalars take our dtype."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, numbers.Number):
            kind = self.data.dtype.kind
            if kind in "fc" or (kind in "iu" and isinstance(other, numbers.Integral)):
                data = self.data
                if type(data) is np.ndarray:
                    return _make_tensor(np.asarray(other, dtype=data.dtype), False, None)
                return _make_tensor(backend.get_array_module(data).asarray(other, dtype=data.dtype), False, None)
        return Tensor(other)

    def __add__(self, other):
        return Add.apply(self, self._operand(other))

    def __radd__(self, other):
        return Add.apply(self._operand(other), self)

    def __sub__(self, other):
        return Sub.apply(self, self._operand(other))

    def __rsub__(self, other):
        return Sub.apply(self._operand(other), self)

    def __mul__(self, other):
        return Mul.apply(self, self._operand(other))

    def __rmul__(self, other):
        return Mul.apply(self._operand(other), self)

    def __truediv__(self, other):
        return Div.apply(self, self._operand(other))

    def __rtruediv__(self, other):
        return Div.apply(self._operand(other), self)

    def __pow__(self, exponent):
        return Pow.apply(self, self._operand(exponent))

    def __rpow__(self, base):
        return Pow.apply(self._operand(base), self)

    def __neg__(self):
        return Neg.apply(self)

    def __pos__(self):
        return self

    def __matmul__(self, other):
        return matmul(self, self._operand(other))

    def __rmatmul__(self, other):
        return matmul(self._operand(other), self)

    def matmul(self, other):
        return matmul(self, self._operand(other))

    def add(self, other, *, alpha=1):
        """self + alpha * other (torch.add)."""
        return Add.apply(self, self._operand(other if alpha == 1 else other * alpha))

    def sub(self, other, *, alpha=1):
        """self - alpha * other (torch.sub)."""
        return Sub.apply(self, self._operand(other if alpha == 1 else other * alpha))

    def mul(self, other):
        return Mul.apply(self, self._operand(other))

    def div(self, other):
        """True division (torch.div without a rounding mode)."""
        return Div.apply(self, self._operand(other))

    def neg(self):
        return Neg.apply(self)

    def pow(self, exponent):
        return Pow.apply(self, self._operand(exponent))

    def square(self):
        """x ** 2 (the same Function and gradient 2 g x)."""
        return Pow.apply(self, self._operand(2))

    # Comparisons are not differentiable: they return boolean tensors outside the graph.
    def _compare(self, other, ufunc) -> Tensor:
        if isinstance(other, Tensor):
            other_data = other.data
            if type(other_data) is not type(self.data):
                raise RuntimeError(
                    f"{ufunc.__name__}: expected both tensors on one device; got {self.device} "
                    f"and {other.device} (move one with .to(device), .cuda() or .cpu())"
                )
        else:
            other_data = other
        return _make_tensor(ufunc(self.data, other_data), False, None)

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    def __eq__(self, other):
        return self._compare(other, np.equal)

    def __ne__(self, other):
        return self._compare(other, np.not_equal)

    # The method forms of the comparisons (torch's names).
    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__

    def equal(self, other: Tensor) -> bool:
        """True when `other` has this shape and the same elements (torch.equal)."""
        return self.shape == other.shape and bool((self._compare(other, np.equal)).data.all())

    # ------------------------------------------------------------------ elementwise
    def exp(self):
        return Exp.apply(self)

    def log(self):
        return Log.apply(self)

    def sqrt(self):
        return Sqrt.apply(self)

    def tanh(self):
        return Tanh.apply(self)

    def sigmoid(self):
        return Sigmoid.apply(self)

    def relu(self):
        return ReLU.apply(self)

    def abs(self):
        return Abs.apply(self)

    __abs__ = abs

    def clip(self, min=None, max=None):
        """Clamp into [min, max]; the gradient passes where min <= x <= max (as torch.clamp)."""
        if min is None and max is None:
            raise ValueError("clip: at least one of min and max must be given")
        return Clip.apply(self, min=min, max=max)

    clamp = clip

    # ------------------------------------------------------------------ reductions
    def sum(self, dim=None, keepdim: bool = False):
        return Sum.apply(self, dim=_dims(dim), keepdim=keepdim)

    def mean(self, dim=None, keepdim: bool = False):
        return Mean.apply(self, dim=_dims(dim), keepdim=keepdim)

    def amax(self, dim=None, keepdim: bool = False):
        return Amax.apply(self, dim=_dims(dim), keepdim=keepdim)

    def amin(self, dim=None, keepdim: bool = False):
        return Amin.apply(self, dim=_dims(dim), keepdim=keepdim)

    def var(self, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
        """Variance; `correction=1` (or `unbiased=True`, the default) divides by N - 1."""
        if correction is None:
            correction = 1 if unbiased is None or unbiased else 0
        elif unbiased is not None:
            raise ValueError("var: give either unbiased or correction, not both")
        return Var.apply(self, dim=_dims(dim), keepdim=keepdim, correction=correction)

    def std(self, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
        """Standard deviation: sqrt(var(...)), with var's arguments (the gradient is var's
        through sqrt's: g (x - mean) / (std (N - correction)), as PyTorch's)."""
        return self.var(dim, unbiased, keepdim, correction=correction).sqrt()

    def logsumexp(self, dim, keepdim: bool = False):
        return LogSumExp.apply(self, dim=_dims(dim), keepdim=keepdim)

    def softmax(self, dim):
        return Softmax.apply(self, dim=dim)

    def log_softmax(self, dim):
        return LogSoftmax.apply(self, dim=dim)

    # ------------------------------------------------------------------ shape
    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape
        return Reshape.apply(self, shape=tuple(shape))

    view = reshape

    def view_as(self, other: Tensor):
        return self.reshape(other.shape)

    reshape_as = view_as

    def expand_as(self, other: Tensor):
        return self.expand(other.shape)

    def clone(self):
        """A copy with its own memory, in the graph (dL/dx = g)."""
        return Clone.apply(self)

    def contiguous(self):
        """Itself when its array is C-contiguous, else a contiguous copy (as PyTorch)."""
        return self if self.data.flags.c_contiguous else Clone.apply(self)

    def permute(self, *dims):
        dims = dims[0] if len(dims) == 1 and not isinstance(dims[0], int) else dims
        if sorted(d % self.ndim for d in dims) != list(range(self.ndim)):
            raise ValueError(
                f"permute: dims {tuple(dims)} are not a permutation of the {self.ndim} dims of shape {self.shape}"
            )
        return Permute.apply(self, dims=tuple(d % self.ndim for d in dims))

    def transpose(self, dim0: int, dim1: int):
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return Permute.apply(self, dims=tuple(dims))

    @property
    def T(self):
        """All dims reversed (as NumPy's `.T`)."""
        return Permute.apply(self, dims=tuple(reversed(range(self.ndim))))

    def unsqueeze(self, dim: int):
        ndim = self.ndim + 1
        if not -ndim <= dim < ndim:
            raise IndexError(f"unsqueeze: dim {dim} out of range for a tensor of {self.ndim} dims")
        dim %= ndim
        return Reshape.apply(self, shape=self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None):
        if dim is None:
            shape = tuple(s for s in self.shape if s != 1)
        else:
            dims = {d % self.ndim for d in ((dim,) if isinstance(dim, int) else dim)}
            shape = tuple(s for i, s in enumerate(self.shape) if not (i in dims and s == 1))
        return Reshape.apply(self, shape=shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        if self.ndim == 0:
            return Reshape.apply(self, shape=(1,))
        start, end = start_dim % self.ndim, end_dim % self.ndim
        if start > end:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {self.shape}")
        merged = int(np.prod(self.shape[start : end + 1]))
        return Reshape.apply(self, shape=self.shape[:start] + (merged,) + self.shape[end + 1 :])

    def expand(self, *sizes):
        sizes = sizes[0] if len(sizes) == 1 and not isinstance(sizes[0], int) else sizes
        sizes = tuple(sizes)
        if len(sizes) < self.ndim:
            raise ValueError(f"expand: {len(sizes)} sizes given for a tensor of {self.ndim} dims (shape {self.shape})")
        lead = len(sizes) - self.ndim
        shape = tuple(
            (self.shape[i - lead] if size == -1 else size) if i >= lead else size for i, size in enumerate(sizes)
        )
        return Expand.apply(self, shape=shape)

    def __getitem__(self, index):
        return GetItem.apply(self, index=_normalize_index(index))


def _normalize_index(index):
    """Turn Tensors and lists inside an index into arrays (integer or boolean)."""
    if isinstance(index, tuple):
        return tuple(_normalize_index_part(i) for i in index)
    return _normalize_index_part(index)


def _normalize_index_part(part):
    if isinstance(part, Tensor):
        return part.data
    if isinstance(part, list):
        return np.asarray(part) if part else np.zeros(0, dtype=np.intp)
    return part


# Ops are bound at the bottom: they import Function, which imports this module.
from . import creation  # noqa: E402  (after Tensor: it imports it)
from . import engine as _engine  # noqa: E402
from .ops import conversion, gather_scatter, reduction, shape, sorting, triangular, unary_math  # noqa: E402
from .ops import matmul as _matmul  # noqa: E402
from .ops.arithmetic import Add, Div, Mul, Neg, Pow, Sub  # noqa: E402
from .ops.device import ToDevice  # noqa: E402
from .ops.elementwise import Abs, Cast, Clip, Clone, Exp, Log, ReLU, Sigmoid, Sqrt, Tanh  # noqa: E402
from .ops.indexing import GetItem  # noqa: E402
from .ops.matmul import matmul  # noqa: E402
from .ops.reduction import Amax, Amin, LogSumExp, Mean, Sum, Var  # noqa: E402
from .ops.shape import Expand, Permute, Reshape  # noqa: E402
from .ops.softmax import LogSoftmax, Softmax  # noqa: E402


def _bind(module, *names: str) -> None:
    """Make each function `module.name(input, ...)` the method `Tensor.name(self, ...)`: one
    definition serves `x.sin()` and `kinone.autograd.sin(x)`, as in PyTorch."""
    for name in names:
        setattr(Tensor, name, getattr(module, name))


_bind(sorting, "argmax", "argmin", "max", "min", "sort", "argsort", "topk")
_bind(gather_scatter, "gather", "scatter", "masked_fill")
_bind(
    unary_math,
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "sinh",
    "cosh",
    "reciprocal",
    "rsqrt",
    "sign",
    "floor",
    "ceil",
    "round",
    "trunc",
)
_bind(reduction, "prod", "cumsum", "norm")
_bind(shape, "flip", "roll", "repeat", "split", "chunk", "narrow", "t")
_bind(_matmul, "mm")
_bind(triangular, "tril", "triu")
_bind(creation, "new_tensor", "new_full", "new_zeros", "new_ones", "new_empty")
Tensor.mT = property(shape.matrix_transpose, doc="The last two dims swapped (a batch of matrices transposed).")
Tensor.type = conversion.tensor_type
Tensor.__format__ = conversion.format_tensor
