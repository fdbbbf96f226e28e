"""`SGD`: stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

import numpy as np

from kinone.autograd import increment_version, no_grad

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

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns `closure()`'s loss."""
        loss = self._evaluate(closure)
        with no_grad():
            for group in self.param_groups:
                # float(): NumPy scalars would promote float32 arithmetic to float64.
                lr, momentum = float(group["lr"]), float(group["momentum"])
                dampening, weight_decay = float(group["dampening"]), float(group["weight_decay"])
                nesterov, maximize = group["nesterov"], group["maximize"]
                for p in group["params"]:
                    grad = self._gradient(p)
                    if grad is None:
                        continue
                    param = p.data
                    if type(param) is not np.ndarray and _fused_cuda.applies(param):
                        self._fused_update(p, grad, lr, momentum, dampening, weight_decay, nesterov, maximize)
                        continue
                    direction = grad
                    if maximize or weight_decay != 0:
                        direction = self._scratch(param, 0)
                        if weight_decay != 0:
                            np.multiply(param, weight_decay, out=direction)
                            if maximize:
                                direction -= grad
                            else:
                                direction += grad
                        else:
                            np.negative(grad, out=direction)

                    if momentum != 0:
                        state = self._state_of(p)
                        buffer = state.get("momentum_buffer")
                        if buffer is None:
                            buffer = state["momentum_buffer"] = direction.astype(param.dtype, copy=True)
                        else:
                            buffer *= momentum
                            if dampening == 0:
                                buffer += direction
                            else:
                                damped = self._scratch(param, 1)
                                np.multiply(direction, 1 - dampening, out=damped)
                                buffer += damped
                        if nesterov:
                            lookahead = self._scratch(param, 1)
                            np.multiply(buffer, momentum, out=lookahead)
                            lookahead += direction
                            direction = lookahead
                        else:
                            direction = buffer

                    update = self._scratch(param, 1)
                    np.multiply(direction, lr, out=update)
                    param -= update
                    increment_version(p)
        return loss

    def _fused_update(self, p, grad, lr, momentum, dampening, weight_decay, nesterov, maximize) -> None:
        """The update above as one CuPy kernel (not run in CI; see `_fused_cuda.py`)."""
        buffer, first = None, False
        if momentum != 0:
            state = self._state_of(p)
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = _empty_beside(p.data, p.data.size).reshape(p.data.shape)
                first = True
        _fused_cuda.sgd_update(p.data, grad, buffer, lr=lr, momentum=momentum, dampening=dampening,
                               weight_decay=weight_decay, nesterov=nesterov, maximize=maximize, first=first)
        increment_version(p)
