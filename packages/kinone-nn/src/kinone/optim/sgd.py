"""`SGD`: stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

import numpy as np

from kinone.autograd import increment_version

from . import _fused_cuda
from .optimizer import Optimizer, _empty_beside


class SGD(Optimizer):
    r"""Stochastic gradient descent, PyTorch's `torch.optim.SGD` step for step.

    For each parameter p with gradient g, at step t (λ weight_decay, μ momentum,
    τ dampening, γ lr)::

        g ← -g                   if maximize
        g ← g + λ·p              if λ ≠ 0
        b ← g                    at the first step (the buffer is seeded with g, not 0)
        b ← μ·b + (1 - τ)·g      afterwards                           } if μ ≠ 0
        g ← g + μ·b  if nesterov, else  g ← b                         }
        p ← p - γ·g

    The momentum buffer is `state[p]["momentum_buffer"]`. Parameters whose `.grad` is None
    are skipped (their buffer is neither created nor decayed). Updates are in place on
    `p.data` and keep its dtype, and bump `p._version` (a backward through a graph recorded
    before the step then raises instead of using the updated weights).
    """

    def __init__(self, params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False, *, maximize=False):
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _check_options(self, options: dict) -> None:
        self._check_real(options, "lr", 0.0)
        self._check_real(options, "momentum", 0.0)
        self._check_real(options, "dampening")
        self._check_real(options, "weight_decay", 0.0)
        if options["nesterov"] and (options["momentum"] <= 0 or options["dampening"] != 0):
            raise ValueError(
                f"SGD: nesterov=True requires momentum > 0 and dampening = 0; "
                f"got momentum {options['momentum']!r}, dampening {options['dampening']!r}"
            )

    def _update_group(self, group: dict) -> None:
        # float(): NumPy scalars would promote float32 arithmetic to float64.
        lr, momentum = float(group["lr"]), float(group["momentum"])
        dampening, weight_decay = float(group["dampening"]), float(group["weight_decay"])
        nesterov, maximize = group["nesterov"], group["maximize"]
        for p, grad in self._params_with_grad(group):
            param = p.data
            if type(param) is not np.ndarray and _fused_cuda.applies(param):
                self._fused_update(p, grad, lr, momentum, dampening, weight_decay, nesterov, maximize)
                continue
            direction = self._regularized_gradient(param, grad, weight_decay, maximize)
            if momentum != 0:
                direction = self._momentum_direction(p, direction, momentum, dampening, nesterov)
            update = self._scratch(param, "work")
            np.multiply(direction, lr, out=update)
            param -= update
            increment_version(p)

    def _momentum_direction(self, p, grad, momentum: float, dampening: float, nesterov: bool):
        """b ← g at the first step, else μ·b + (1 - τ)·g; returns g + μ·b with Nesterov, else b."""
        state = self._state_of(p)
        buffer = state.get("momentum_buffer")
        if buffer is None:
            buffer = state["momentum_buffer"] = grad.astype(p.data.dtype, copy=True)
        else:
            buffer *= momentum
            if dampening == 0:
                buffer += grad
            else:
                damped = self._scratch(p.data, "work")
                np.multiply(grad, 1 - dampening, out=damped)
                buffer += damped
        if not nesterov:
            return buffer
        lookahead = self._scratch(p.data, "work")
        np.multiply(buffer, momentum, out=lookahead)
        lookahead += grad
        return lookahead

    def _fused_update(self, p, grad, lr, momentum, dampening, weight_decay, nesterov, maximize) -> None:
        """The update above as one CuPy kernel (not run in CI; see `_fused_cuda.py`)."""
        buffer, first = None, False
        if momentum != 0:
            state = self._state_of(p)
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = _empty_beside(p.data, p.data.size).reshape(p.data.shape)
                first = True
        _fused_cuda.sgd_update(
            p.data,
            grad,
            buffer,
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            first=first,
        )
        increment_version(p)
