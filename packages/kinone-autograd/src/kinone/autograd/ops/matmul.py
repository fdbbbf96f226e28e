"""Matrix product with NumPy/PyTorch `matmul` semantics (1-D, 2-D, batched broadcasting)."""

from __future__ import annotations

import numpy as np

from ..function import Function
from .promotion import FLOATING


class MatMul(Function):
    """y = a @ b;  dL/da = g @ bᵀ,  dL/db = aᵀ @ g  (over the last two dims).

    A 1-D `a` acts as a row (1, k) and a 1-D `b` as a column (k, 1), and the added dim is
    removed again, as in NumPy. Batch dims broadcast; the engine sums them back.
    """

    @staticmethod
    def forward(ctx, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: both operands need at least 1 dim, got shapes {a.shape} and {b.shape}")
        if a.shape[-1] != b.shape[0 if b.ndim == 1 else -2]:
            raise ValueError(
                f"matmul: shapes {a.shape} and {b.shape} are not aligned: "
                f"a's last dim ({a.shape[-1]}) must equal b's {'only' if b.ndim == 1 else 'second-to-last'} dim"
            )
        if (a.dtype.kind in FLOATING) != (b.dtype.kind in FLOATING):
            raise TypeError(
                f"matmul: both operands need the same kind of dtype (as in PyTorch), got {a.dtype} and {b.dtype}; "
                "convert the integer one with .float() or .to(dtype)"
            )
        try:
            out = np.matmul(a, b)
        except ValueError:
            raise ValueError(f"matmul: batch dims of shapes {a.shape} and {b.shape} cannot be broadcast") from None
        ctx.save_for_backward(a if ctx.needs_input_grad[1] else None, b if ctx.needs_input_grad[0] else None)
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        a_ndim, b_ndim = len(ctx.input_shapes[0]), len(ctx.input_shapes[1])
        if b_ndim == 1:
            grad = np.expand_dims(grad, -1)
        if a_ndim == 1:
            grad = np.expand_dims(grad, -2)
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            b2 = b[:, None] if b_ndim == 1 else b
            grad_a = grad @ np.swapaxes(b2, -1, -2)
            if a_ndim == 1:
                grad_a = grad_a[..., 0, :]
        if ctx.needs_input_grad[1]:
            a2 = a[None, :] if a_ndim == 1 else a
            if b_ndim == 2 and a2.ndim > 2:
                # A shared weight under batch dims (a linear layer): one GEMM over all rows
                # instead of a batched product followed by a sum over the batch.
                grad_b = a2.reshape(-1, a2.shape[-1]).T @ grad.reshape(-1, grad.shape[-1])
            else:
                grad_b = np.swapaxes(a2, -1, -2) @ grad
            if b_ndim == 1:
                grad_b = grad_b[..., 0]
        return grad_a, grad_b


def matmul(a, b):
    """Matrix product of two tensors (see `MatMul`)."""
    return MatMul.apply(a, b)


def mm(input, mat2):
    """The product of two matrices (torch.mm: both 2-D, no broadcasting; see `MatMul`)."""
    for name, operand in (("self", input), ("mat2", mat2)):
        if operand.ndim != 2:
            raise RuntimeError(
                f"mm: {name} must be a matrix (2-D), got shape {tuple(operand.shape)}; "
                "use matmul (or bmm) for other shapes"
            )
    return MatMul.apply(input, mat2)
