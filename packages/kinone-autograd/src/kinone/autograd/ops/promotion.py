"""Integer and bool inputs to floating ops, as PyTorch treats them (NumPy would give float64).

- A floating op (exp, log, sqrt, tanh, sigmoid, logsumexp, true division) of integers
  computes in float32, the default float dtype: `tensor([1, 2]).exp()` is float32.
- Integers meeting floats (`i * f`, `i + 0.5`, `where(c, i, f)`, `cat([i, f])`) take the
  floating operand's dtype: int64 with float32 gives float32, not NumPy's float64.
- Where PyTorch refuses integers (mean, var, softmax, log_softmax, matmul of an integer and a
  floating matrix, an integer to a negative integer power), Kinone refuses by name.

Integer results stay integer, as in both libraries (`i + i`, `i * 2`, `i.sum()`, `i.abs()`).
"""

from __future__ import annotations

import numpy as np

DEFAULT_FLOAT = np.float32
FLOATING = "fc"


def floating(x: np.ndarray) -> np.ndarray:
    """`x` itself when floating, else `x` in float32."""
    return x if x.dtype.kind in FLOATING else x.astype(DEFAULT_FLOAT)


def require_floating(op: str, x: np.ndarray) -> None:
    """Refuse a non-floating input, as PyTorch does for this op."""
    if x.dtype.kind not in FLOATING:
        raise TypeError(
            f"{op}: needs a floating-point tensor, got dtype {x.dtype} (as PyTorch, which refuses it too); "
            "convert with .float() first"
        )


def promote(*arrays: np.ndarray) -> tuple:
    """Integer/bool arrays among floating ones are cast to the floating arrays' dtype;
    arrays of one kind are returned as they are (NumPy then promotes as usual)."""
    floats = [a.dtype for a in arrays if a.dtype.kind in FLOATING]
    if not floats or len(floats) == len(arrays):
        return arrays
    dtype = np.result_type(*floats)
    return tuple(a if a.dtype.kind in FLOATING else a.astype(dtype) for a in arrays)


def true_division_operands(a: np.ndarray, b: np.ndarray) -> tuple:
    """Operands of `a / b`: integers with integers divide in float32, as PyTorch's true division."""
    if a.dtype.kind in FLOATING or b.dtype.kind in FLOATING:
        return promote(a, b)
    return a.astype(DEFAULT_FLOAT), b.astype(DEFAULT_FLOAT)
