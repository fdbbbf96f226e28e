"""`RAdam`: Adam whose adaptive step is switched on, and rectified, once its variance is tractable."""

from __future__ import annotations

import numpy as np

from kinone.autograd import increment_version

from ._inplace import addcmul_, lerp_
from .optimizer import Optimizer


class RAdam(Optimizer):
    r"""RAdam (Liu et al., 2020), PyTorch's `torch.optim.RAdam` step for step.

    For each parameter p with gradient g, at step t = 1, 2, ... (γ lr, λ weight_decay)::

        g ← -g                                  if maximize
        p ← p·(1 - γ·λ)                         if λ ≠ 0 and decoupled_weight_decay (RAdamW)
        g ← g + λ·p                             if λ ≠ 0 otherwise
        m ← β1·m + (1 - β1)·g
        v ← β2·v + (1 - β2)·g²
        m̂ = m / (1 - β1^t)
        ρ_∞ = 2/(1 - β2) - 1,   ρ_t = ρ_∞ - 2t·β2^t / (1 - β2^t)
        if ρ_t > 5:  r = √((ρ_t - 4)(ρ_t - 2)ρ_∞ / ((ρ_∞ - 4)(ρ_∞ - 2)ρ_t))
                     p ← p - γ·m̂ · √(1 - β2^t) / (√v + ε) · r
        else:        p ← p - γ·m̂                (SGD with momentum while the variance is untractable)

    State: `step`, `exp_avg` (m) and `exp_avg_sq` (v), created at a parameter's first step
    with a gradient. Parameters whose `.grad` is None are skipped. Updates are in place on
    `p.data`, keep its dtype and bump `p._version`.
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0,
        decoupled_weight_decay=False,
        *,
        maximize=False,
    ):
        defaults = {
            "lr": lr,
            "betas": tuple(betas) if isinstance(betas, list) else betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _check_options(self, options: dict) -> None:
        for option in ("lr", "eps", "weight_decay"):
            self._check_real(options, option, 0.0)
        self._check_betas(options)

    def _update_group(self, group: dict) -> None:
        # float(): NumPy scalars would promote float32 arithmetic to float64.
        lr, eps, weight_decay = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(beta) for beta in group["betas"])
        decoupled, maximize = group["decoupled_weight_decay"], group["maximize"]
        for p, grad in self._params_with_grad(group):
            param = p.data
            state = self._state_of(p)
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(param)
                state["exp_avg_sq"] = np.zeros_like(param)
            state["step"] += 1
            step = state["step"]
            if decoupled and weight_decay != 0:
                param *= 1 - lr * weight_decay
            l2_penalty = 0.0 if decoupled else weight_decay
            grad = self._regularized_gradient(param, grad, l2_penalty, maximize)

            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            work = self._scratch(param, "work")
            lerp_(exp_avg, grad, 1 - beta1, work)  # m ← β1·m + (1 - β1)·g
            exp_avg_sq *= beta2
            addcmul_(exp_avg_sq, grad, grad, 1 - beta2, work)  # v ← β2·v + (1 - β2)·g²

            bias_correction1 = 1 - beta1**step
            bias_correction2 = 1 - beta2**step
            update = np.divide(exp_avg, bias_correction1, out=work)
            update *= lr  # γ·m̂
            rho_inf = 2 / (1 - beta2) - 1
            rho_t = rho_inf - 2 * step * (beta2**step) / bias_correction2
            if rho_t > 5.0:
                adaptive_lr = np.sqrt(exp_avg_sq, out=self._scratch(param, "adaptive_lr"))
                adaptive_lr += eps
                np.divide(bias_correction2**0.5, adaptive_lr, out=adaptive_lr)  # √(1 - β2^t) / (√v + ε)
                update *= adaptive_lr
                update *= _rectification(rho_t, rho_inf)
            param -= update
            increment_version(p)


def _rectification(rho_t: float, rho_inf: float) -> float:
    """r = √((ρ_t - 4)(ρ_t - 2)ρ_∞ / ((ρ_∞ - 4)(ρ_∞ - 2)ρ_t)), the variance rectification term."""
    return ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
