"""`NAdam`: Adam with Nesterov momentum, its momentum warmed up by a decaying schedule."""

from __future__ import annotations

import numpy as np

from kinone.autograd import increment_version

from ._inplace import addcdiv_, addcmul_, lerp_
from .optimizer import Optimizer


class NAdam(Optimizer):
    r"""NAdam (Dozat, 2016), PyTorch's `torch.optim.NAdam` step for step.

    For each parameter p with gradient g, at step t = 1, 2, ... (γ lr, λ weight_decay,
    ψ momentum_decay)::

        g ← -g                                  if maximize
        p ← p·(1 - γ·λ)                         if λ ≠ 0 and decoupled_weight_decay (NAdamW)
        g ← g + λ·p                             if λ ≠ 0 otherwise
        μ_t = β1·(1 - 0.96^(t·ψ) / 2),   μ_{t+1} likewise
        Π_t = Π_{t-1}·μ_t                       (mu_product, Π_0 = 1)
        m ← β1·m + (1 - β1)·g
        v ← β2·v + (1 - β2)·g²
        d = √(v / (1 - β2^t)) + ε
        p ← p - γ·(1 - μ_t)/(1 - Π_t) · g / d - γ·μ_{t+1}/(1 - Π_t·μ_{t+1}) · m / d

    State: `step`, `mu_product` (Π_t), `exp_avg` (m) and `exp_avg_sq` (v), created at a
    parameter's first step with a gradient. PyTorch holds `mu_product` in a float32 scalar
    tensor (its default dtype), whatever the parameters' dtype; it is rounded to float32 here
    too, so the trajectories agree. Parameters whose `.grad` is None are skipped. Updates are
    in place on `p.data`, keep its dtype and bump `p._version`.
    """

    def __init__(
        self,
        params,
        lr=2e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0,
        momentum_decay=4e-3,
        decoupled_weight_decay=False,
        *,
        maximize=False,
    ):
        defaults = {
            "lr": lr,
            "betas": tuple(betas) if isinstance(betas, list) else betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum_decay": momentum_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _check_options(self, options: dict) -> None:
        for option in ("lr", "eps", "weight_decay", "momentum_decay"):
            self._check_real(options, option, 0.0)
        self._check_betas(options)

    def _update_group(self, group: dict) -> None:
        # float(): NumPy scalars would promote float32 arithmetic to float64.
        lr, eps, weight_decay = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(beta) for beta in group["betas"])
        momentum_decay, decoupled = float(group["momentum_decay"]), group["decoupled_weight_decay"]
        maximize = group["maximize"]
        for p, grad in self._params_with_grad(group):
            param = p.data
            state = self._state_of(p)
            if not state:
                state["step"] = 0
                state["mu_product"] = 1.0
                state["exp_avg"] = np.zeros_like(param)
                state["exp_avg_sq"] = np.zeros_like(param)
            state["step"] += 1
            step = state["step"]
            if decoupled and weight_decay != 0:
                param *= 1 - lr * weight_decay
            l2_penalty = 0.0 if decoupled else weight_decay
            grad = self._regularized_gradient(param, grad, l2_penalty, maximize)

            mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))
            mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * momentum_decay)))
            mu_product = state["mu_product"] = float(np.float32(state["mu_product"]) * np.float32(mu))
            mu_product_next = mu_product * mu_next

            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            work = self._scratch(param, "work")
            lerp_(exp_avg, grad, 1 - beta1, work)  # m ← β1·m + (1 - β1)·g
            exp_avg_sq *= beta2
            addcmul_(exp_avg_sq, grad, grad, 1 - beta2, work)  # v ← β2·v + (1 - β2)·g²
            denom = np.divide(exp_avg_sq, 1 - beta2**step, out=self._scratch(param, "denom"))
            np.sqrt(denom, out=denom)
            denom += eps  # d = √(v / (1 - β2^t)) + ε
            addcdiv_(param, grad, denom, -lr * (1.0 - mu) / (1.0 - mu_product), work)
            addcdiv_(param, exp_avg, denom, (-lr * mu_next) / (1.0 - mu_product_next), work)
            increment_version(p)
