"""`gradcheck`: compare analytic gradients with central finite differences in float64.

For y = fn(x₁, …, xₙ) and a fixed random cotangent v (same shape as y), the scalar
L = Σ y·v has the analytic gradient dL/dxᵢ from one `backward(v)`. Numerically,
dL/dxᵢ[j] ≈ (L(xᵢ[j] + ε) - L(xᵢ[j] - ε)) / 2ε for every element j (inputs up to
`max_full_elements`), or, for larger inputs, along `directions` random unit vectors u:
(L(x + εu) - L(x - εu)) / 2ε ≈ Σ dL/dx · u. An element passes when
|analytic - numerical| <= atol + rtol·|numerical|.

Inputs on a CUDA device are checked there: their float64 copies stay on the device, elements
are perturbed by writing Python floats into the device array, v and u are drawn on the host
and copied over, and only scalars and the gradients come back to the host for comparison.
"""

from __future__ import annotations

import numpy as np

from .backend import as_array, is_cuda_array, to_host
from .function import Function
from .grad_mode import no_grad
from .tensor import Tensor


def functions_in(package: str) -> set[type]:
    """Every concrete `Function` subclass defined under `package` (e.g. "kinone.nn").

    Classes whose name starts with an underscore are shared bases and not listed. Each
    package's test suite checks that every one of these has a gradcheck sample.
    """
    found, stack = set(), list(Function.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if (cls.__module__ == package or cls.__module__.startswith(package + ".")) and not cls.__name__.startswith("_"):
            found.add(cls)
    return found


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with finite differences."""


def _prepare(inputs):
    """float64 copies of the floating inputs, on their devices; returns (tensors, indices to check)."""
    tensors, checked = [], []
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor):
            array, wants_grad = x.data, x.requires_grad
        elif isinstance(x, np.ndarray) or is_cuda_array(x):
            array, wants_grad = x, x.dtype.kind == "f"
        else:
            tensors.append(x)  # a Python value passed through untouched
            continue
        if array.dtype.kind == "f":
            t = Tensor(array.astype(np.float64, copy=True), requires_grad=wants_grad)
            if wants_grad:
                checked.append(i)
        else:
            t = Tensor(array.copy())
        tensors.append(t)
    return tensors, checked


def _name(fn) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def gradcheck(
    fn,
    inputs,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    *,
    seed: int = 0,
    max_full_elements: int = 4096,
    directions: int = 4,
    raise_exception: bool = True,
) -> bool:
    """Check `fn(*inputs)`'s gradients for every input that requires grad (Tensors with
    `requires_grad=True`, or floating NumPy arrays). Returns True, or raises
    `GradcheckError` naming the input and its worst element (False if not raising)."""
    if not isinstance(inputs, (tuple, list)):
        inputs = (inputs,)
    tensors, checked = _prepare(inputs)
    if not checked:
        raise ValueError("gradcheck: no input requires grad; pass float Tensors with requires_grad=True")
    output = fn(*tensors)
    if not isinstance(output, Tensor) or output.dtype.kind != "f":
        raise TypeError(f"gradcheck: {_name(fn)} must return a floating Tensor, got {type(output).__name__}")
    rng = np.random.default_rng(seed)
    cotangent = as_array(rng.standard_normal(output.shape), output.data)  # on the output's device
    if output.requires_grad:
        output.backward(Tensor(cotangent.astype(output.dtype, copy=False)))

    def objective() -> float:
        with no_grad():
            return float((fn(*tensors).data * cotangent).sum())

    for i in checked:
        t = tensors[i]
        analytic = np.zeros(t.shape) if t.grad is None else to_host(t.grad.data)
        if analytic.shape != t.shape or analytic.dtype != np.float64:
            return _fail(
                raise_exception,
                f"gradcheck: {_name(fn)}: gradient of input {i} has shape "
                f"{analytic.shape} and dtype {analytic.dtype}, expected {t.shape} float64",
            )
        if t.data.size <= max_full_elements:
            message = _check_elements(t, analytic, objective, eps, atol, rtol)
        else:
            message = _check_directions(t, analytic, objective, rng, eps, atol, rtol, directions)
        if message is not None:
            return _fail(raise_exception, f"gradcheck: {_name(fn)}: input {i} (shape {t.shape}) fails {message}")
    return True


def _check_elements(t, analytic, objective, eps, atol, rtol):
    """Every element's central difference against `analytic` (a host array); None when all pass.
    Elements are perturbed by writing Python floats into the input's array on its own device."""
    flat = t.data.reshape(-1)  # a view: perturbing it perturbs the input
    host = to_host(t.data).reshape(-1)  # the original values, read once
    numerical = np.empty(t.data.size)
    for j in range(t.data.size):
        original = float(host[j])
        flat[j] = original + eps
        plus = objective()
        flat[j] = original - eps
        minus = objective()
        flat[j] = original
        numerical[j] = (plus - minus) / (2 * eps)
    if not t.data.size:
        return None
    numerical = numerical.reshape(t.shape)
    error = np.abs(analytic - numerical) - (atol + rtol * np.abs(numerical))
    worst = np.unravel_index(np.argmax(error), t.shape)
    if error[worst] <= 0:
        return None
    return (
        f"at element {tuple(int(w) for w in worst)}: "
        f"analytical {analytic[worst]:.8g}, numerical {numerical[worst]:.8g}, "
        f"abs error {abs(analytic[worst] - numerical[worst]):.3g} > atol + rtol*|numerical| "
        f"= {atol + rtol * abs(numerical[worst]):.3g}"
    )


def _check_directions(t, analytic, objective, rng, eps, atol, rtol, directions):
    """Directional derivatives along random unit vectors (drawn on the host, moved to the
    input's device); None when all pass."""
    original = t.data.copy()
    for k in range(directions):
        u = rng.standard_normal(t.shape)
        u /= np.linalg.norm(u)
        step = as_array(eps * u, t.data)
        t.data[...] = original + step
        plus = objective()
        t.data[...] = original - step
        minus = objective()
        t.data[...] = original
        numerical = (plus - minus) / (2 * eps)
        projected = float(np.sum(analytic * u))
        if abs(projected - numerical) > atol + rtol * abs(numerical):
            return f"along random direction {k}: analytical {projected:.8g}, numerical {numerical:.8g}"
    return None


def _fail(raise_exception: bool, message: str) -> bool:
    if raise_exception:
        raise GradcheckError(message)
    return False
