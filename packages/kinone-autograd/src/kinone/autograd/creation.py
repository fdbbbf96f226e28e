"""Creating tensors, and the functional forms of the multi-tensor ops."""

from __future__ import annotations

import numbers

import numpy as np

from . import backend
from .ops.joining import Cat, Maximum, Minimum, Stack, Where
from .tensor import DEFAULT_FLOAT, Tensor, _make_tensor

# One generator per device for randn/rand (and dropout's masks), seeded with `manual_seed`
# (as torch.manual_seed). A CUDA device's generator is made on first use from the last seed.
_generator = np.random.default_rng()
_seed = None
_device_generators: dict = {}


def manual_seed(seed: int) -> np.random.Generator:
    """Seed the generators behind `randn`, `rand` and dropout on every device; returns the CPU one."""
    global _generator, _seed
    _generator = np.random.default_rng(seed)
    _seed = seed
    _device_generators.clear()
    return _generator


def default_generator(device=None):
    """The generator of `device` (the CPU's by default; its `bit_generator.state` can be saved)."""
    if device is None:
        return _generator
    device = backend.Device(device)
    if device.type == "cpu":
        return _generator
    if device not in _device_generators:
        xp = backend.cuda_module()
        with xp.cuda.Device(device.index):
            _device_generators[device] = xp.random.default_rng(_seed)
    return _device_generators[device]


def _module(device):
    """The array module for `device` (NumPy when None or cpu)."""
    if device is None:
        return np
    device = backend.Device(device)
    return np if device.type == "cpu" else backend.cuda_module()


def tensor(data, requires_grad: bool = False, dtype=None, device=None) -> Tensor:
    """A new leaf tensor holding a copy of `data` (as torch.tensor), on `device` (default cpu)."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, np.ndarray) or backend.is_cuda_array(data):
        data = data.astype(dtype or data.dtype, copy=True)
    t = Tensor(data, dtype=dtype)
    if device is not None:
        t.data = backend.to_device(t.data, backend.Device(device))
    return t.requires_grad_(True) if requires_grad else t


def _shape(shape) -> tuple:
    if len(shape) == 1 and not isinstance(shape[0], numbers.Integral):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def _filled(fill, shape, dtype, requires_grad, device) -> Tensor:
    xp = _module(device)
    return Tensor(xp.full(_shape(shape), fill, dtype=dtype or DEFAULT_FLOAT), requires_grad=requires_grad)


def zeros(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _filled(0, shape, dtype, requires_grad, device)


def ones(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _filled(1, shape, dtype, requires_grad, device)


def full(shape, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    shape = (shape,) if isinstance(shape, numbers.Integral) else (tuple(shape),)
    return _filled(fill_value, shape, dtype, requires_grad, device)


def _like(t, fill, dtype, device, requires_grad) -> Tensor:
    if isinstance(t, Tensor):
        t = t.data
    if backend.is_cuda_array(t):
        data, device = t, backend.device_of(t) if device is None else device
    else:
        data = np.asarray(t)
    return _filled(fill, (data.shape,), dtype or data.dtype, requires_grad, device)


def zeros_like(t, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Zeros shaped like `t` (a Tensor or an array), with its dtype and on its device unless given."""
    return _like(t, 0, dtype, device, requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Ones shaped like `t`, with its dtype and on its device unless given."""
    return _like(t, 1, dtype, device, requires_grad)


def full_like(t, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """`fill_value` everywhere, shaped like `t`, with its dtype and on its device unless given."""
    return _like(t, fill_value, dtype, device, requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples (float32 unless `dtype` is given), from `device`'s generator."""
    data = default_generator(device).standard_normal(_shape(shape), dtype=np.float64).astype(dtype or DEFAULT_FLOAT)
    return Tensor(data, requires_grad=requires_grad)


def rand(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1) (float32 unless `dtype` is given), from `device`'s generator."""
    data = default_generator(device).random(_shape(shape), dtype=np.float64).astype(dtype or DEFAULT_FLOAT)
    return Tensor(data, requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Values from `start` to `end` (exclusive) by `step`; int64 for integers, float32 otherwise."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        integral = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = np.int64 if integral else DEFAULT_FLOAT
    return Tensor(_module(device).arange(start, end, step, dtype=dtype), requires_grad=requires_grad)


def empty(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor of `shape` (zeros in Kinone: NumPy's uninitialised memory is not worth the
    surprise; torch.empty promises nothing about the values)."""
    return _filled(0, shape, dtype, requires_grad, device)


def empty_like(t, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """As `empty`, shaped like `t` (zeros)."""
    return _like(t, 0, dtype, device, requires_grad)


def _floating_like(t: Tensor, dtype, device) -> tuple:
    """(dtype, device) for a random tensor like `t`: t's own unless given."""
    return dtype or t.dtype, device if device is not None else t.device


def rand_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1) shaped like `t`, with its dtype and device unless given."""
    dtype, device = _floating_like(t, dtype, device)
    return rand(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def randn_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples shaped like `t`, with its dtype and device unless given."""
    dtype, device = _floating_like(t, dtype, device)
    return randn(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def randint(*args, size=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Integers drawn uniformly from [low, high): `randint(high, size)` or `randint(low, high,
    size)` (torch.randint; int64 unless `dtype` is given), from `device`'s generator."""
    if size is None:
        if not args:
            raise TypeError("randint: expected (high, size) or (low, high, size)")
        *args, size = args
    if len(args) not in (1, 2):
        raise TypeError(f"randint: expected (high, size) or (low, high, size), got {len(args)} bounds")
    low, high = (0, args[0]) if len(args) == 1 else args
    if high <= low:
        raise ValueError(f"randint: high ({high}) must be above low ({low})")
    size = (size,) if isinstance(size, numbers.Integral) else tuple(size)
    data = default_generator(device).integers(low, high, size=size, dtype=np.int64)
    return Tensor(data.astype(dtype or np.int64, copy=False), requires_grad=requires_grad)


def randperm(n: int, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A random permutation of 0 .. n-1 (int64 unless `dtype` is given; torch.randperm), from
    `device`'s generator (the order of uniform draws, so every device's generator serves)."""
    draws = default_generator(device).random(int(n), dtype=np.float64)
    order = backend.get_array_module(draws).argsort(draws)
    return Tensor(order.astype(dtype or np.int64, copy=False), requires_grad=requires_grad)


def linspace(start, end, steps: int, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """`steps` evenly spaced values from `start` to `end`, both included (float32 unless
    `dtype` is given; torch.linspace)."""
    data = _module(device).linspace(start, end, int(steps), dtype=np.float64)
    return Tensor(data.astype(dtype or DEFAULT_FLOAT), requires_grad=requires_grad)


def logspace(
    start, end, steps: int, base: float = 10.0, dtype=None, device=None, requires_grad: bool = False
) -> Tensor:
    """base ** linspace(start, end, steps) (torch.logspace; float32 unless `dtype` is given)."""
    data = base ** _module(device).linspace(start, end, int(steps), dtype=np.float64)
    return Tensor(data.astype(dtype or DEFAULT_FLOAT), requires_grad=requires_grad)


def eye(n: int, m=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """The n x m identity matrix (m = n unless given; float32 unless `dtype` is given)."""
    return Tensor(
        _module(device).eye(int(n), None if m is None else int(m), dtype=dtype or DEFAULT_FLOAT),
        requires_grad=requires_grad,
    )


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing `array`'s memory (torch.from_numpy): writes to one show in the other."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return Tensor(array)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """`data` as a tensor, sharing memory where it can (a Tensor or an array of the right
    dtype on the right device), copying otherwise (torch.as_tensor)."""
    t = data if isinstance(data, Tensor) else Tensor(data, dtype=dtype)
    if dtype is not None and t.dtype != np.dtype(dtype):
        t = t.to(dtype)
    return t if device is None else t.to(device)


def _as_tensor(x, like: Tensor | None = None) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if like is not None and isinstance(x, numbers.Number) and like.dtype.kind == "f":
        return _make_tensor(backend.as_array(like.dtype.type(x), like.data), False, None)
    return Tensor(x)


def _first_tensor(*xs):
    return next((x for x in xs if isinstance(x, Tensor)), None)


def cat(tensors, dim: int = 0) -> Tensor:
    """Concatenate tensors along an existing dim."""
    return Cat.apply(*[_as_tensor(t) for t in tensors], dim=dim)


def stack(tensors, dim: int = 0) -> Tensor:
    """Stack same-shaped tensors along a new dim."""
    return Stack.apply(*[_as_tensor(t) for t in tensors], dim=dim)


def where(cond, a, b) -> Tensor:
    """Elementwise `a` where `cond` is true, else `b` (scalars take the other side's dtype)."""
    like = _first_tensor(a, b)
    return Where.apply(_as_tensor(cond), _as_tensor(a, like), _as_tensor(b, like))


def maximum(a, b) -> Tensor:
    """Elementwise maximum with broadcasting."""
    like = _first_tensor(a, b)
    return Maximum.apply(_as_tensor(a, like), _as_tensor(b, like))


def minimum(a, b) -> Tensor:
    """Elementwise minimum with broadcasting."""
    like = _first_tensor(a, b)
    return Minimum.apply(_as_tensor(a, like), _as_tensor(b, like))


# ---------------------------------------------------------------------- Tensor.new_* methods
# Bound as methods of Tensor (not functions of the torch namespace): a new leaf with `self`'s
# dtype and device unless `dtype=` / `device=` say otherwise, as PyTorch's Tensor.new_*.
def _own(self: Tensor, dtype, device) -> tuple:
    return (self.dtype if dtype is None else dtype), (self.device if device is None else device)


def new_tensor(self: Tensor, data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A copy of `data` as a new leaf, with this tensor's dtype and device unless given."""
    dtype, device = _own(self, dtype, device)
    return tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def new_full(self: Tensor, size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """`fill_value` everywhere in a tensor of `size`, with this tensor's dtype and device unless given."""
    dtype, device = _own(self, dtype, device)
    return full(size, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def new_zeros(self: Tensor, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Zeros of `size` (ints, or one sequence), with this tensor's dtype and device unless given."""
    dtype, device = _own(self, dtype, device)
    return _filled(0, size, dtype, requires_grad, device)


def new_ones(self: Tensor, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Ones of `size`, with this tensor's dtype and device unless given."""
    dtype, device = _own(self, dtype, device)
    return _filled(1, size, dtype, requires_grad, device)


def new_empty(self: Tensor, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of `size` (zeros, as `empty`), with this tensor's dtype and device unless given."""
    dtype, device = _own(self, dtype, device)
    return _filled(0, size, dtype, requires_grad, device)


# ---------------------------------------------------------------------- legacy tensor types
class _LegacyTensorType(type):
    """The kind of `FloatTensor`, `LongTensor`, ...: PyTorch's legacy constructors. Calling one
    makes a CPU Tensor of its dtype: `LongTensor(2, 3)` (a shape; zeros, as `empty`),
    `LongTensor([1, 2])` (data), `LongTensor()` (empty), `LongTensor(t)` (t's data, when t has
    that dtype). `isinstance(t, FloatTensor)` asks whether t is a float32 CPU tensor, and
    `t.type(LongTensor)` casts to it, as in PyTorch."""

    def __call__(cls, *args, device=None):
        if device is not None and backend.Device(device).type != "cpu":
            raise RuntimeError(
                f"{cls.__name__}: legacy constructor expects device type: cpu but device type: "
                f"{backend.Device(device).type} was passed"
            )
        if len(args) == 1 and isinstance(args[0], Tensor):
            if args[0].dtype != cls.dtype:
                raise TypeError(f"{cls.__name__}: expected a tensor of dtype {cls.dtype}, got {args[0].dtype}")
            return args[0].detach()
        shape_given = all(isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in args)
        if shape_given or (len(args) == 1 and type(args[0]).__name__ == "Size"):  # Kinone's Size or the facade's
            return _filled(0, args or (0,), cls.dtype, False, None)
        if len(args) != 1:
            raise TypeError(f"{cls.__name__}: expected sizes (ints) or one sequence of data, got {args!r}")
        return tensor(args[0], dtype=cls.dtype)

    def __instancecheck__(cls, obj) -> bool:
        return isinstance(obj, Tensor) and obj.dtype == cls.dtype and obj.is_cpu

    def __repr__(cls) -> str:
        return f"<class 'kinone.autograd.{cls.__name__}'>"


def _legacy_type(name: str, dtype) -> type:
    return _LegacyTensorType(name, (), {"dtype": np.dtype(dtype), "__module__": "kinone.autograd", "__slots__": ()})


FloatTensor = _legacy_type("FloatTensor", np.float32)
DoubleTensor = _legacy_type("DoubleTensor", np.float64)
HalfTensor = _legacy_type("HalfTensor", np.float16)
LongTensor = _legacy_type("LongTensor", np.int64)
IntTensor = _legacy_type("IntTensor", np.int32)
ShortTensor = _legacy_type("ShortTensor", np.int16)
CharTensor = _legacy_type("CharTensor", np.int8)
ByteTensor = _legacy_type("ByteTensor", np.uint8)
BoolTensor = _legacy_type("BoolTensor", np.bool_)
