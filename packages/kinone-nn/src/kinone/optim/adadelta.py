"""`Adadelta`: steps scaled by the ratio of running RMS of updates to running RMS of gradients."""

from __future__ import annotations

import numpy as np

from kinone.autograd import increment_version

from ._inplace import addcmul_
from .optimizer import Optimizer


class Adadelta(Optimizer):
    r"""Adadelta (Zeiler, 2012), PyTorch's `torch.optim.Adadelta` step for step.

    For each parameter p with gradient g (γ lr, ρ rho, λ weight_decay)::

        g ← -g                          if maximize
        g ← g + λ·p                     if λ ≠ 0
        v ← ρ·v + (1 - ρ)·g²
        Δ = √(u + ε) / √(v + ε) · g
        u ← ρ·u + (1 - ρ)·Δ²
        p ← p - γ·Δ

    State: `step`, `square_avg` (v) and `acc_delta` (u), created at a parameter's first step
    with a gradient. Parameters whose `.grad` is None are skipped. Updates are in place on
    `p.data`, keep its dtype and bump `p._version`.
    """

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, *, maximize=False):
        defaults = {"lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay, "maximize": maximize}
        super().__init__(params, defaults)

    def _check_options(self, options: dict) -> None:
        for option in ("lr", "eps", "weight_decay"):
            self._check_real(options, option, 0.0)
        self._check_real(options, "rho", 0.0)
        if options["rho"] > 1.0:
            raise self._invalid("rho", options["rho"], "a number in [0.0, 1.0]")

    def _update_group(self, group: dict) -> None:
        # float(): NumPy scalars would promote float32 arithmetic to float64.
        lr, rho, eps = float(group["lr"]), float(group["rho"]), float(group["eps"])
        weight_decay, maximize = float(group["weight_decay"]), group["maximize"]
        for p, grad in self._params_with_grad(group):
            param = p.data
            state = self._state_of(p)
            if not state:
                state["step"] = 0
                state["square_avg"] = np.zeros_like(param)
                state["acc_delta"] = np.zeros_like(param)
            state["step"] += 1
            grad = self._regularized_gradient(param, grad, weight_decay, maximize)
            square_avg, acc_delta = state["square_avg"], state["acc_delta"]
            work = self._scratch(param, "work")

            square_avg *= rho
            addcmul_(square_avg, grad, grad, 1 - rho, work)  # v ← ρ·v + (1 - ρ)·g²
            std = np.add(square_avg, eps, out=self._scratch(param, "std"))
            np.sqrt(std, out=std)  # √(v + ε)
            delta = np.add(acc_delta, eps, out=self._scratch(param, "delta"))
            np.sqrt(delta, out=delta)
            delta /= std
            delta *= grad  # Δ = √(u + ε) / √(v + ε) · g
            acc_delta *= rho
            addcmul_(acc_delta, delta, delta, 1 - rho, work)  # u ← ρ·u + (1 - ρ)·Δ²
            np.multiply(delta, lr, out=work)
            param -= work
            increment_version(p)
