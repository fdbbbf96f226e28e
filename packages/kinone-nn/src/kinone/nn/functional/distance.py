"""Cosine similarity along a dim, as torch.nn.functional.cosine_similarity: each input is
divided by its norm first (clamped below at eps), which keeps the result in [-1, 1]."""

from __future__ import annotations

import numpy as np

from kinone.autograd import Function, Tensor
from kinone.autograd.backend import get_array_module


def _unit(a, dim: int, eps: float):
    """(a / max(‖a‖, eps), max(‖a‖, eps), a / ‖a‖ (0 where ‖a‖ = 0)), norms kept along dim."""
    norm = np.sqrt((a * a).sum(axis=dim, keepdims=True))
    clamped = np.maximum(norm, eps).astype(a.dtype, copy=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        direction = np.where(norm > 0, a / norm, 0).astype(a.dtype, copy=False)
    return a / clamped, clamped, direction


class CosineSimilarity(Function):
    """y = Σ_dim â · b̂ with â = a / max(‖a‖, eps), b̂ = b / max(‖b‖, eps) (a, b broadcast);
    dL/da = g · (b̂ - y · a/‖a‖) / max(‖a‖, eps),  dL/db = g · (â - y · b/‖b‖) / max(‖b‖, eps)
    (the clamp's own gradient is not taken, as in PyTorch, where it runs under no_grad)."""

    @staticmethod
    def forward(ctx, a, b, *, dim=1, eps=1e-8):
        xp = get_array_module(a)
        a, b = xp.broadcast_arrays(a, b)
        a_unit, a_norm, a_dir = _unit(a, dim, eps)
        b_unit, b_norm, b_dir = _unit(b, dim, eps)
        out = (a_unit * b_unit).sum(axis=dim)
        ctx.save_for_backward(a_unit, a_norm, a_dir, b_unit, b_norm, b_dir, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        a_unit, a_norm, a_dir, b_unit, b_norm, b_dir, out = ctx.saved
        dim = ctx.attrs.get("dim", 1)
        g, y = np.expand_dims(grad, dim), np.expand_dims(out, dim)
        da = g * (b_unit - y * a_dir) / a_norm if ctx.needs_input_grad[0] else None
        db = g * (a_unit - y * b_dir) / b_norm if ctx.needs_input_grad[1] else None
        return da, db


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """Σ x1 · x2 / (max(‖x1‖, eps) · max(‖x2‖, eps)) along dim, the inputs broadcast against
    each other (as torch.nn.functional.cosine_similarity); the result lacks dim."""
    op = "cosine_similarity"
    for name, t in (("x1", x1), ("x2", x2)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
        if t.dtype.kind != "f":
            raise TypeError(f"{op}: {name} must be floating-point, got dtype {t.dtype}")
    try:
        shape = np.broadcast_shapes(x1.shape, x2.shape)
    except ValueError:
        raise ValueError(f"{op}: x1 of shape {x1.shape} and x2 of shape {x2.shape} do not broadcast") from None
    if not -len(shape) <= dim < len(shape):
        raise ValueError(f"{op}: dim={dim} is out of range for inputs broadcast to shape {shape}")
    return CosineSimilarity.apply(x1, x2, dim=dim % len(shape), eps=float(eps))
