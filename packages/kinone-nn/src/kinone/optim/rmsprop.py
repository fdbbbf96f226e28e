"""`RMSprop`: divide the gradient by a running root mean square of recent gradients."""

from __future__ import annotations

import numpy as np

from kinone.autograd import increment_version

from ._inplace import addcdiv_, addcmul_, lerp_
from .optimizer import Optimizer


class RMSprop(Optimizer):
    r"""RMSprop (Hinton's lecture 6e; Graves 2013 for the centered form), PyTorch's
    `torch.optim.RMSprop` step for step.

    For each parameter p with gradient g (γ lr, α alpha, λ weight_decay, μ momentum)::

        g ← -g                          if maximize
        g ← g + λ·p                     if λ ≠ 0
        v ← α·v + (1 - α)·g²
        g_avg ← α·g_avg + (1 - α)·g     if centered, and then  avg = √(v - g_avg²)
        avg = √v + ε                    (ε after the root, as PyTorch)
        b ← μ·b + g / avg,  p ← p - γ·b   if μ > 0
        p ← p - γ·g / avg                 otherwise

    State: `step`, `square_avg` (v), `momentum_buffer` (b, starts at 0) when momentum > 0 and
    `grad_avg` when centered, created at a parameter's first step with a gradient. Parameters
    whose `.grad` is None are skipped. Updates are in place on `p.data`, keep its dtype and
    bump `p._version`.
    """

    def __init__(
        self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, *, maximize=False
    ):
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _check_options(self, options: dict) -> None:
        for option in ("lr", "eps", "momentum", "weight_decay", "alpha"):
            self._check_real(options, option, 0.0)

    def _update_group(self, group: dict) -> None:
        # float(): NumPy scalars would promote float32 arithmetic to float64.
        lr, alpha, eps = float(group["lr"]), float(group["alpha"]), float(group["eps"])
        weight_decay, momentum = float(group["weight_decay"]), float(group["momentum"])
        centered, maximize = group["centered"], group["maximize"]
        for p, grad in self._params_with_grad(group):
            param = p.data
            state = self._state_of(p)
            if not state:
                state["step"] = 0
                state["square_avg"] = np.zeros_like(param)
            if momentum > 0 and "momentum_buffer" not in state:  # also when switched on later
                state["momentum_buffer"] = np.zeros_like(param)
            if centered and "grad_avg" not in state:
                state["grad_avg"] = np.zeros_like(param)
            state["step"] += 1
            grad = self._regularized_gradient(param, grad, weight_decay, maximize)
            work = self._scratch(param, "work")

            square_avg = state["square_avg"]
            square_avg *= alpha
            addcmul_(square_avg, grad, grad, 1 - alpha, work)  # v ← α·v + (1 - α)·g²
            avg = self._scratch(param, "avg")
            if centered:
                grad_avg = lerp_(state["grad_avg"], grad, 1 - alpha, work)
                np.multiply(grad_avg, grad_avg, out=avg)
                np.subtract(square_avg, avg, out=avg)
                np.sqrt(avg, out=avg)  # √(v - g_avg²)
            else:
                np.sqrt(square_avg, out=avg)
            avg += eps

            if momentum > 0:
                buffer = state["momentum_buffer"]
                buffer *= momentum
                addcdiv_(buffer, grad, avg, 1.0, work)  # b ← μ·b + g / avg
                np.multiply(buffer, lr, out=work)
                param -= work
            else:
                addcdiv_(param, grad, avg, -lr, work)  # p ← p - γ·g / avg
            increment_version(p)
