"""Gradient clipping, in place on `.grad`, as `torch.nn.utils`.

    total = clip_grad_norm_(model.parameters(), max_norm=1.0)

`clip_grad_norm_`: the norm of all gradients taken together, N = (sum_i ||g_i||_p^p)^(1/p)
(the largest |g| for p = inf); if N > max_norm, every gradient is scaled by
max_norm / (N + 1e-6), PyTorch's factor (clamped at 1, so gradients are never scaled up).
Gradients are changed in place: each one's version is bumped. These are updates outside the
graph (no autograd record), as in PyTorch.
"""

from __future__ import annotations

import math

import numpy as np

from kinone.autograd import Tensor, backend, increment_version


def _grads(parameters) -> list:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def get_total_norm(tensors, norm_type: float = 2.0, error_if_nonfinite: bool = False) -> Tensor:
    """The p-norm of `tensors` (Tensors or arrays) taken as one vector, as a 0-d Tensor."""
    arrays = [t.data if isinstance(t, Tensor) else t for t in tensors]
    norm_type = float(norm_type)
    if not arrays:
        return Tensor(np.array(0.0, dtype=np.float32))
    xp = backend.get_array_module(arrays[0])
    if norm_type == math.inf:
        norms = [xp.abs(a).max() if a.size else xp.zeros((), a.dtype) for a in arrays]
        total = xp.stack([n.astype(np.float64) for n in norms]).max()
    else:
        total = xp.stack([(xp.abs(a.astype(np.float64)) ** norm_type).sum() for a in arrays]).sum() ** (1.0 / norm_type)
    total = total.astype(arrays[0].dtype)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is {float(total)}; "
            "set error_if_nonfinite=False to clip anyway"
        )
    return Tensor(total)


def clip_grad_norm_(
    parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False, foreach=None
) -> Tensor:
    """Scale the gradients of `parameters` in place so that their total p-norm is at most
    `max_norm`; returns the total norm before clipping (a 0-d Tensor). `foreach` is accepted
    for PyTorch's signature."""
    grads = _grads(parameters)
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    if not grads:
        return total
    coefficient = float(max_norm) / (float(total.data) + 1e-6)
    if coefficient < 1.0:
        for g in grads:
            g.data *= g.data.dtype.type(coefficient)
            increment_version(g)
    return total


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamp every gradient of `parameters` to [-clip_value, clip_value], in place."""
    clip_value = float(clip_value)
    for g in _grads(parameters):
        xp = backend.get_array_module(g.data)
        xp.clip(g.data, -clip_value, clip_value, out=g.data)
        increment_version(g)
