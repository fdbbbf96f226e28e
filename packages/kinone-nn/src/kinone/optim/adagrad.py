"""`Adagrad`: per-element learning rates shrinking with the sum of squared gradients."""

from __future__ import annotations

import numpy as np

from kinone.autograd import increment_version

from ._inplace import addcdiv_, addcmul_
from .optimizer import Optimizer


class Adagrad(Optimizer):
    r"""Adagrad (Duchi, Hazan & Singer, 2011), PyTorch's `torch.optim.Adagrad` step for step.

    For each parameter p with gradient g, at step t = 1, 2, ... (γ lr, η lr_decay,
    λ weight_decay)::

        g ← -g                      if maximize
        g ← g + λ·p                 if λ ≠ 0
        γ_t = γ / (1 + (t - 1)·η)
        s ← s + g²
        p ← p - γ_t·g / (√s + ε)

    State: `step` and `sum` (s, starting at `initial_accumulator_value`), created for every
    parameter when the optimizer is built, as PyTorch does (so `state_dict()` lists them
    before the first step; a group added later gets its state at its first step). Parameters
    whose `.grad` is None are skipped. Updates are in place on `p.data`, keep its dtype and
    bump `p._version`.
    """

    def __init__(
        self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10, *, maximize=False
    ):
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "maximize": maximize,
        }
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._initialize_state(p)

    def _check_options(self, options: dict) -> None:
        for option in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            self._check_real(options, option, 0.0)

    def _initialize_state(self, p) -> None:
        """step 0 and sum = initial_accumulator_value (the optimizer's default, as PyTorch)."""
        state = self.state[p]
        state["step"] = 0
        state["sum"] = np.full_like(p.data, self.defaults["initial_accumulator_value"])

    def _update_group(self, group: dict) -> None:
        # float(): NumPy scalars would promote float32 arithmetic to float64.
        lr, lr_decay, eps = float(group["lr"]), float(group["lr_decay"]), float(group["eps"])
        weight_decay, maximize = float(group["weight_decay"]), group["maximize"]
        for p, grad in self._params_with_grad(group):
            param = p.data
            state = self._state_of(p)
            if not state:
                self._initialize_state(p)
            state["step"] += 1
            grad = self._regularized_gradient(param, grad, weight_decay, maximize)
            decayed_lr = lr / (1 + (state["step"] - 1) * lr_decay)

            work = self._scratch(param, "work")
            state_sum = addcmul_(state["sum"], grad, grad, 1.0, work)  # s ← s + g²
            std = np.sqrt(state_sum, out=work)
            std += eps
            addcdiv_(param, grad, std, -decayed_lr, work=std)  # p ← p - γ_t·g / (√s + ε)
            increment_version(p)
