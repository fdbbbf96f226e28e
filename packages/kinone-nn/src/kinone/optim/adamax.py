"""`Adamax`: Adam with the infinity norm of past gradients in place of their RMS."""

from __future__ import annotations

import numpy as np

from kinone.autograd import increment_version

from ._inplace import addcdiv_, lerp_
from .optimizer import Optimizer


class Adamax(Optimizer):
    r"""Adamax (Kingma & Ba, 2015, section 7), PyTorch's `torch.optim.Adamax` step for step.

    For each parameter p with gradient g, at step t = 1, 2, ... (γ lr, λ weight_decay)::

        g ← -g                          if maximize
        g ← g + λ·p                     if λ ≠ 0
        m ← β1·m + (1 - β1)·g
        u ← max(β2·u, |g| + ε)
        p ← p - γ/(1 - β1^t) · m / u

    State: `step`, `exp_avg` (m) and `exp_inf` (u), created at a parameter's first step with a
    gradient. Parameters whose `.grad` is None are skipped. Updates are in place on `p.data`,
    keep its dtype and bump `p._version`.
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, *, maximize=False):
        defaults = {
            "lr": lr,
            "betas": tuple(betas) if isinstance(betas, list) else betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
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
        maximize = group["maximize"]
        for p, grad in self._params_with_grad(group):
            param = p.data
            state = self._state_of(p)
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(param)
                state["exp_inf"] = np.zeros_like(param)
            state["step"] += 1
            grad = self._regularized_gradient(param, grad, weight_decay, maximize)
            exp_avg, exp_inf = state["exp_avg"], state["exp_inf"]
            work = self._scratch(param, "work")

            lerp_(exp_avg, grad, 1 - beta1, work)  # m ← β1·m + (1 - β1)·g
            exp_inf *= beta2
            norm = np.absolute(grad, out=work)
            norm += eps
            np.maximum(exp_inf, norm, out=exp_inf)  # u ← max(β2·u, |g| + ε), NaN propagating
            step_size = lr / (1 - beta1 ** state["step"])
            addcdiv_(param, exp_avg, exp_inf, -step_size, work)  # p ← p - γ/(1 - β1^t) · m / u
            increment_version(p)
