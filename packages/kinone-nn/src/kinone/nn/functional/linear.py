"""The affine map of a fully connected layer, as one Function (one GEMM each way)."""

from __future__ import annotations

from kinone.autograd import Function, Tensor


class Linear(Function):
    """y = x · Wᵀ + b over the last dim of x (any leading dims);
    dL/dx = g · W,  dL/dW = gᵀ · x (summed over leading dims),  dL/db = Σ g over leading dims."""

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[1]:
            raise ValueError(
                f"linear: input of shape {x.shape} needs its last dim to equal weight.shape[1]; "
                f"weight has shape {weight.shape} (out_features, in_features)"
            )
        if bias is not None and bias.shape != (weight.shape[0],):
            raise ValueError(f"linear: bias of shape {bias.shape} does not match weight of shape {weight.shape}")
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, weight if ctx.needs_input_grad[0] else None)
        out = x @ weight.T
        if bias is not None:
            out += bias
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved
        grad_x = grad @ weight if ctx.needs_input_grad[0] else None
        grad_w = grad_b = None
        grad2d = grad.reshape(-1, grad.shape[-1])
        if ctx.needs_input_grad[1]:
            grad_w = grad2d.T @ x.reshape(-1, x.shape[-1])
        if len(ctx.needs_input_grad) > 2 and ctx.needs_input_grad[2]:
            grad_b = grad2d.sum(axis=0)
        return (grad_x, grad_w) if len(ctx.needs_input_grad) == 2 else (grad_x, grad_w, grad_b)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x · weightᵀ + bias, with weight of shape (out_features, in_features)."""
    return Linear.apply(x, weight) if bias is None else Linear.apply(x, weight, bias)
