"""A stand-in for CuPy, so that device mistakes fail without a GPU (used by `use_standin_cuda`).

Its arrays live in host memory but behave like CuPy's where it matters for correctness:
- they are not `numpy.ndarray`s, and mixing them with NumPy arrays in an operation raises
  TypeError (as CuPy does): an op that builds a constant with `np.zeros` instead of
  `xp.zeros` fails here as it would on the GPU;
- implicit conversion to NumPy (`np.asarray(x)`, NumPy's `as_strided`) raises TypeError, with
  CuPy's message; `.get()` is the explicit copy to the host;
- the NumPy-only forms measured to fail on CuPy 14 fail here too: `einsum(out=)`,
  `as_strided(writeable=)`, reductions of Python sequences (`xp.prod(shape)`).
NumPy functions called on stand-in arrays dispatch through `__array_ufunc__` and
`__array_function__`, as they do for CuPy arrays. It is slow and meant for tests only.
"""

from __future__ import annotations

import types
import weakref

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

_IMPLICIT = (
    "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy array explicitly."
)
_SEQUENCE_REFUSED = {
    "prod",
    "sum",
    "mean",
    "max",
    "min",
    "amax",
    "amin",
    "any",
    "all",
    "cumsum",
    "argmax",
    "argmin",
    "std",
    "var",
}
# NumPy functions that CuPy does not have (NumPy 2's top-level functions missing from CuPy's
# cupy/__init__.py): `xp.name` is an AttributeError and `np.name(device_array)` finds no
# implementation (CuPy's __array_function__ returns NotImplemented for them), as on a GPU.
_NOT_IN_CUPY = frozenset(
    {
        "asmatrix",
        "block",
        "bmat",
        "busday_count",
        "busday_offset",
        "datetime_as_string",
        "datetime_data",
        "einsum_path",
        "frompyfunc",
        "fromregex",
        "geomspace",
        "getbufsize",
        "geterr",
        "geterrcall",
        "histogram_bin_edges",
        "insert",
        "is_busday",
        "isnat",
        "matvec",
        "nanpercentile",
        "nanquantile",
        "nested_iters",
        "polyder",
        "polydiv",
        "polyint",
        "setbufsize",
        "seterr",
        "seterrcall",
        "spacing",
        "unstack",
        "vecdot",
        "vecmat",
    }
)
# Functions that copy host data onto the device, as cupy.asarray does.
_FROM_HOST = {
    "asarray",
    "array",
    "asanyarray",
    "ascontiguousarray",
    "full",
    "full_like",
    "zeros",
    "ones",
    "empty",
    "zeros_like",
    "ones_like",
    "empty_like",
    "arange",
    "linspace",
    "eye",
    "identity",
}


class _DeviceId:
    id = 0

    def __repr__(self):
        return "<CUDA Device 0 (stand-in)>"


_DEVICE = _DeviceId()


def _mixed_error(where: str, value) -> TypeError:
    return TypeError(
        f"{where}: unsupported type {type(value).__module__}.{type(value).__name__} "
        "(a NumPy array mixed with a stand-in CUDA array; move it with xp.asarray first)"
    )


def _unwrap(value, where: str, allow_host: bool = False):
    """Replace stand-in arrays by their NumPy arrays, inside lists, tuples and dicts; refuse
    NumPy arrays (they are on the other device) unless `allow_host`."""
    if isinstance(value, ndarray):
        return value._a
    if type(value) is np.ndarray or isinstance(value, np.ndarray):
        if not allow_host:
            raise _mixed_error(where, value)
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v, where, allow_host) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v, where, allow_host) for k, v in value.items()}
    return value


def _wrap(value):
    if type(value) is np.ndarray or isinstance(value, np.ndarray):
        return ndarray(value)
    if isinstance(value, np.generic):  # CuPy's reductions give 0-d arrays, not NumPy scalars
        return ndarray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


# The stand-in array wrapping each NumPy array (weakly), so that `view.base` is the very object
# the view was taken from, as CuPy's `base` is (a view's base is the array owning the memory).
_wrappers: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


class ndarray(NDArrayOperatorsMixin):
    """A stand-in device array: a NumPy array that refuses to be treated as one."""

    __slots__ = ("__weakref__", "_a")

    def __init__(self, array: np.ndarray):
        self._a = array
        _wrappers[id(array)] = self

    # ------------------------------------------------------------------ NumPy protocols
    def __array__(self, dtype=None, copy=None):
        raise TypeError(_IMPLICIT)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if ufunc.__name__ in _NOT_IN_CUPY:
            return NotImplemented  # NumPy then raises TypeError, as CuPy finds no such ufunc
        _check_ufunc_method(ufunc.__name__, method)
        return _call(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types_, args, kwargs):
        name = func.__name__
        if func.__module__ == "numpy" and name in _NOT_IN_CUPY:
            return NotImplemented  # NumPy then raises TypeError: no implementation found
        if name == "einsum" and kwargs.get("out") is not None:
            raise TypeError("einsum: CuPy's einsum has no out= argument")
        args = _unwrap(args, name)
        kwargs = _unwrap(kwargs, name)
        return _wrap(func(*args, **kwargs))

    # ------------------------------------------------------------------ what CuPy arrays have
    @property
    def device(self):
        return _DEVICE

    def get(self, stream=None, order="C", out=None) -> np.ndarray:
        """A host copy (CuPy's `.get()`)."""
        return np.array(self._a, copy=True)

    @property
    def shape(self):
        return self._a.shape

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    @property
    def dtype(self):
        return self._a.dtype

    @property
    def ndim(self):
        return self._a.ndim

    @property
    def size(self):
        return self._a.size

    @property
    def strides(self):
        return self._a.strides

    @property
    def itemsize(self):
        return self._a.itemsize

    @property
    def nbytes(self):
        return self._a.nbytes

    @property
    def flags(self):
        flags = self._a.flags
        return _Flags(flags.c_contiguous, flags.f_contiguous, flags.owndata)

    @property
    def base(self):
        base = self._a.base
        if not isinstance(base, np.ndarray):
            return None  # owns its memory (CuPy's base is None or a cupy.ndarray)
        wrapper = _wrappers.get(id(base))
        return wrapper if wrapper is not None and wrapper._a is base else ndarray(base)

    @property
    def T(self):
        return ndarray(self._a.T)

    def __getattr__(self, name):
        if name.startswith("__"):  # never hand out __array_interface__ and the like
            raise AttributeError(name)
        attribute = getattr(self._a, name)
        if not callable(attribute):
            return _wrap(attribute)

        def method(*args, **kwargs):
            return _wrap(attribute(*_unwrap(args, name), **_unwrap(kwargs, name)))

        return method

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key, "__getitem__", allow_host=True)])

    def __setitem__(self, key, value):
        # As CuPy (cupy/cupy#2079): host arrays may index, but not be assigned into device memory.
        self._a[_unwrap(key, "__setitem__", allow_host=True)] = _unwrap(value, "__setitem__")

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(row) for row in self._a)

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __complex__(self):
        return complex(self._a)

    def __index__(self):
        return self._a.__index__()

    def __repr__(self):
        return "standin." + repr(self._a)

    def __copy__(self):
        return ndarray(self._a.copy())

    def __deepcopy__(self, memo):
        return ndarray(self._a.copy())

    def __reduce__(self):
        raise TypeError("stand-in CUDA arrays cannot be pickled; use .get()")


class _Flags:
    """CuPy's ndarray.flags: C_CONTIGUOUS, F_CONTIGUOUS and OWNDATA only (no `writeable`)."""

    __slots__ = ("c_contiguous", "f_contiguous", "owndata")

    def __init__(self, c_contiguous, f_contiguous, owndata):
        self.c_contiguous, self.f_contiguous, self.owndata = c_contiguous, f_contiguous, owndata

    @property
    def fnc(self):
        return self.f_contiguous and not self.c_contiguous

    @property
    def forc(self):
        return self.f_contiguous or self.c_contiguous

    def __getitem__(self, name):
        names = {"C_CONTIGUOUS": "c_contiguous", "F_CONTIGUOUS": "f_contiguous", "OWNDATA": "owndata"}
        if name not in names:
            raise KeyError(f"{name} is not defined for cupy.ndarray.flags")
        return getattr(self, names[name])


# ---------------------------------------------------------------------- the module surface
class _Ufunc:
    """A NumPy ufunc called through the module (`xp.exp(x)`, `xp.add.at(...)`)."""

    def __init__(self, ufunc):
        self._ufunc = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args, **kwargs):
        return _call(self._ufunc, "__call__", args, kwargs)

    def __getattr__(self, method):
        if method in ("reduce", "accumulate", "at", "outer", "reduceat"):

            def call(*args, **kwargs):
                _check_ufunc_method(self.__name__, method)
                return _call(self._ufunc, method, args, kwargs)

            return call
        return getattr(self._ufunc, method)


# The ufunc methods CuPy 14 implements, and for which ufuncs (cupy/_core/_kernel.pyx: reduce and
# accumulate for add and multiply, reduceat for add, `at` for the ufuncs with a scatter op).
_UFUNC_METHODS = {
    "reduce": {"add", "multiply"},
    "accumulate": {"add", "multiply"},
    "reduceat": {"add"},
    "at": {"add", "subtract", "maximum", "minimum", "bitwise_and", "bitwise_or", "bitwise_xor"},
}


def _check_ufunc_method(name: str, method: str) -> None:
    """Raise as CuPy's ufunc does for a method it does not implement for this ufunc."""
    if method in _UFUNC_METHODS and name not in _UFUNC_METHODS[method]:
        raise NotImplementedError(f"`{name}.{method}` is not supported yet (CuPy 14 has no such ufunc method)")


def _call(ufunc, method, args, kwargs):
    where = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"
    for value in args:
        if isinstance(value, (list, tuple)) and method != "at":
            raise TypeError(f"{where}: unsupported type {type(value).__name__} (CuPy takes arrays, not sequences)")
    out_given = kwargs.get("out")
    result = getattr(ufunc, method)(*_unwrap(args, where, allow_host=method == "at"), **_unwrap(kwargs, where))
    if out_given is not None:
        return out_given[0] if isinstance(out_given, tuple) and len(out_given) == 1 else out_given
    return _wrap(result)


def _function(name: str, func):
    def call(*args, **kwargs):
        if name in _SEQUENCE_REFUSED and args and isinstance(args[0], (list, tuple, int, float)):
            raise TypeError(f"{name}: unsupported type {type(args[0]).__name__} (CuPy reduces arrays only)")
        if name == "einsum" and kwargs.get("out") is not None:
            raise TypeError("einsum: CuPy's einsum has no out= argument")
        allow_host = name in _FROM_HOST
        out_given = kwargs.get("out")
        result = func(*_unwrap(args, name, allow_host), **_unwrap(kwargs, name, allow_host))
        if out_given is not None:
            return out_given
        if name in ("asarray", "asanyarray") and args and isinstance(args[0], ndarray) and result is args[0]._a:
            return args[0]
        if name in ("array", "asarray", "ascontiguousarray") and isinstance(result, np.ndarray):
            if args and type(args[0]) is np.ndarray and result is args[0]:
                result = result.copy()  # a device array never shares memory with a host array
        return _wrap(result)

    call.__name__ = name
    return call


def asnumpy(array) -> np.ndarray:
    return array.get() if isinstance(array, ndarray) else np.asarray(array)


def get_array_module(*arrays):
    return __import__(__name__, fromlist=["_"]) if any(isinstance(a, ndarray) for a in arrays) else np


def _as_strided(x, shape=None, strides=None, **kwargs):
    if "writeable" in kwargs or "subok" in kwargs:
        raise TypeError("as_strided: CuPy's as_strided takes no writeable= or subok= argument")
    if not isinstance(x, ndarray):
        raise _mixed_error("as_strided", x)
    return ndarray(np.lib.stride_tricks.as_strided(x._a, shape=shape, strides=strides, writeable=True))


lib = types.SimpleNamespace(stride_tricks=types.SimpleNamespace(as_strided=_as_strided))


# cupy.random.Generator's methods in CuPy 14 (cupy/random/_generator_api.pyx): no `normal`,
# `choice`, `permutation` or `shuffle`, which NumPy's Generator has.
_GENERATOR_METHODS = {
    "random",
    "uniform",
    "integers",
    "beta",
    "chisquare",
    "dirichlet",
    "exponential",
    "f",
    "geometric",
    "hypergeometric",
    "logseries",
    "standard_exponential",
    "poisson",
    "power",
    "standard_normal",
    "gamma",
    "standard_gamma",
    "binomial",
}


class _Generator:
    """A per-device generator with cupy.random.Generator's methods (NumPy's draws, as stand-in arrays)."""

    def __init__(self, seed=None):
        self._rng = np.random.default_rng(seed)

    def __getattr__(self, name):
        if name not in _GENERATOR_METHODS:
            raise AttributeError(f"'cupy.random.Generator' object has no attribute {name!r} (stand-in: as CuPy 14)")
        method = getattr(self._rng, name)
        return lambda *args, **kwargs: _wrap(method(*args, **kwargs))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=np.float64):
        """CuPy's uniform takes a dtype (NumPy's does not)."""
        return _wrap(np.asarray(self._rng.uniform(low, high, size)).astype(dtype, copy=False))

    @property
    def bit_generator(self):
        return self._rng.bit_generator


random = types.SimpleNamespace(default_rng=_Generator, Generator=_Generator)


class _CudaDevice:
    def __init__(self, index=0):
        if index not in (0, None):
            raise RuntimeError(f"stand-in CUDA: there is only device 0; got {index}")
        self.id = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        pass


cuda = types.SimpleNamespace(
    Device=_CudaDevice,
    runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
    Stream=types.SimpleNamespace(null=None),
)


def __getattr__(name):
    if name in _NOT_IN_CUPY:
        raise AttributeError(f"module 'cupy' has no attribute {name!r} (stand-in: NumPy has it, CuPy does not)")
    value = getattr(np, name)
    if isinstance(value, np.ufunc):
        return _Ufunc(value)
    if isinstance(value, type) or not callable(value):
        return value  # dtypes, constants (newaxis, pi, inf)
    return _function(name, value)
