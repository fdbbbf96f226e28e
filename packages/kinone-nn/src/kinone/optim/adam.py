"""`Adam` and `AdamW`: one loop; AdamW differs only in where the weight decay goes."""

from __future__ import annotations

import math
import numbers

import numpy as np

from kinone.autograd import increment_version, no_grad

from . import _fused_cuda
from .optimizer import Optimizer


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015), PyTorch's `torch.optim.Adam` step for step.

    For each parameter p with gradient g, at step t = 1, 2, ... (γ lr, λ weight_decay)::

        g ← -g                         if maximize
        g ← g + λ·p                    if λ ≠ 0 (L2 penalty, through the moments)
        m ← β1·m + (1 - β1)·g          (computed as PyTorch's lerp: m + (1-β1)·(g - m))
        v ← β2·v + (1 - β2)·g²
        v_max ← max(v_max, v)          if amsgrad, and v_max replaces v below
        p ← p - γ/(1 - β1^t) · m / (√v / √(1 - β2^t) + ε)

    ε is added to the bias-corrected √v̂, as PyTorch does (Chainer adds it elsewhere).
    State: `step` (int), `exp_avg` (m), `exp_avg_sq` (v), and `max_exp_avg_sq` with amsgrad,
    created at a parameter's first step with a gradient. Parameters whose `.grad` is None are
    skipped. Updates are in place on `p.data`, keep its dtype and bump `p._version`.
    """

    _decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *, maximize=False):
        defaults = {
            "lr": lr,
            "betas": tuple(betas) if isinstance(betas, list) else betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _check_options(self, options: dict) -> None:
        self._check_real(options, "lr", 0.0)
        self._check_real(options, "eps", 0.0)
        self._check_real(options, "weight_decay", 0.0)
        betas = options["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise self._invalid("betas", betas, "a pair (beta1, beta2)")
        for i, beta in enumerate(betas):
            valid = isinstance(beta, numbers.Real) and not isinstance(beta, bool) and 0.0 <= beta < 1.0
            if not valid:
                raise self._invalid(f"betas[{i}]", beta, "a number in [0.0, 1.0)")

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns `closure()`'s loss."""
        loss = self._evaluate(closure)
        with no_grad():
            for group in self.param_groups:
                self._update_group(group)
        return loss

    def _update_group(self, group: dict) -> None:
        # float(): NumPy scalars would promote float32 arithmetic to float64.
        lr, eps, weight_decay = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(beta) for beta in group["betas"])
        amsgrad, maximize = group["amsgrad"], group["maximize"]
        for p in group["params"]:
            grad = self._gradient(p)
            if grad is None:
                continue
            param = p.data
            state = self._state_of(p)
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(param)
                state["exp_avg_sq"] = np.zeros_like(param)
            if amsgrad and "max_exp_avg_sq" not in state:  # also when amsgrad is switched on later
                state["max_exp_avg_sq"] = np.zeros_like(param)
            state["step"] += 1
            step = state["step"]
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            if type(param) is not np.ndarray and _fused_cuda.applies(param):
                # The update below as one CuPy kernel (not run in CI; see `_fused_cuda.py`).
                _fused_cuda.adam_update(
                    param, grad, exp_avg, exp_avg_sq, state["max_exp_avg_sq"] if amsgrad else None,
                    lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                    decoupled=self._decoupled_weight_decay, maximize=maximize,
                    step_size=lr / (1 - beta1**step), bias_correction2_sqrt=math.sqrt(1 - beta2**step),
                )
                increment_version(p)
                continue

            if weight_decay != 0 and self._decoupled_weight_decay:
                param *= 1 - lr * weight_decay
            if maximize or (weight_decay != 0 and not self._decoupled_weight_decay):
                transformed = self._scratch(param, 0)
                if weight_decay != 0 and not self._decoupled_weight_decay:
                    np.multiply(param, weight_decay, out=transformed)
                    if maximize:
                        transformed -= grad
                    else:
                        transformed += grad
                else:
                    np.negative(grad, out=transformed)
                grad = transformed

            work = self._scratch(param, 1)
            # m ← lerp(m, g, 1 - β1), in the form PyTorch's lerp picks for the weight.
            weight = 1 - beta1
            np.subtract(grad, exp_avg, out=work)
            if weight < 0.5:
                work *= weight
                exp_avg += work
            else:
                work *= 1 - weight
                np.subtract(grad, work, out=exp_avg)
            # v ← β2·v + (1 - β2)·g²
            np.multiply(grad, grad, out=work)
            work *= 1 - beta2
            exp_avg_sq *= beta2
            exp_avg_sq += work
            if amsgrad:
                second_moment = state["max_exp_avg_sq"]
                np.maximum(second_moment, exp_avg_sq, out=second_moment)
            else:
                second_moment = exp_avg_sq

            step_size = lr / (1 - beta1**step)
            bias_correction2_sqrt = math.sqrt(1 - beta2**step)
            denom = work
            np.sqrt(second_moment, out=denom)
            denom /= bias_correction2_sqrt
            denom += eps
            np.divide(exp_avg, denom, out=work)
            work *= step_size
            param -= work
            increment_version(p)


class AdamW(Adam):
    r"""AdamW (Loshchilov & Hutter, 2019), PyTorch's `torch.optim.AdamW` step for step.

    Adam with the weight decay taken out of the gradient and applied to the weights directly,
    before the Adam update (γ lr, λ weight_decay, default 1e-2)::

        g ← -g                         if maximize
        p ← p·(1 - γ·λ)
        m ← β1·m + (1 - β1)·g
        v ← β2·v + (1 - β2)·g²
        v_max ← max(v_max, v)          if amsgrad, and v_max replaces v below
        p ← p - γ/(1 - β1^t) · m / (√v / √(1 - β2^t) + ε)

    State as `Adam`. Parameters whose `.grad` is None are skipped, and are not decayed.
    """

    _decoupled_weight_decay = True

    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *, maximize=False
    ):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
