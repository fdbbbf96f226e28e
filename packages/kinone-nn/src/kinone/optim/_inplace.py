"""PyTorch's in-place tensor updates that optimizers are written in (`lerp_`, `addcmul_`,
`addcdiv_`), on arrays, so each optimizer's loop reads line by line like PyTorch's.

Each takes a `work` array shaped like the target (an optimizer's scratch array) for the
intermediate product, so an update allocates nothing. NumPy ufuncs with `out=` dispatch to
CuPy (and to the stand-in device), so the same lines run on both.
"""

from __future__ import annotations

import numpy as np


def lerp_(start, end, weight: float, work):
    """start ← start + weight·(end - start), in place (`torch.Tensor.lerp_`).

    In the form PyTorch's kernel picks for the weight: for weight < 0.5 the formula above,
    else end - (1 - weight)·(end - start), which is exact at weight 1."""
    np.subtract(end, start, out=work)
    if weight < 0.5:
        work *= weight
        start += work
    else:
        work *= 1 - weight
        np.subtract(end, work, out=start)
    return start


def addcmul_(target, a, b, value: float, work):
    """target ← target + value·a·b, in place (`torch.Tensor.addcmul_`)."""
    np.multiply(a, b, out=work)
    work *= value
    target += work
    return target


def addcdiv_(target, a, b, value: float, work):
    """target ← target + value·a/b, in place (`torch.Tensor.addcdiv_`). `work` may be `b`
    itself (the quotient then overwrites it)."""
    np.divide(a, b, out=work)
    work *= value
    target += work
    return target
