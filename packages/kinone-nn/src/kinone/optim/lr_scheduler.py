"""Learning-rate schedulers, PyTorch's `torch.optim.lr_scheduler` value for value.

A scheduler writes `group["lr"]` of its optimizer's groups. Build it after the optimizer;
it records each group's starting lr as `group["initial_lr"]` (kept if already there) and
sets the lr for step 0 at once. Call `scheduler.step()` after `optimizer.step()`, once per
epoch or per batch as the schedule was designed (`ReduceLROnPlateau.step(metric)` once per
validation; `CosineAnnealingWarmRestarts.step(epoch)` may take a fractional epoch).

Like PyTorch's, StepLR, MultiStepLR, LinearLR, ExponentialLR and CosineAnnealingLR are *chainable*: each
step multiplies the group's current lr by the ratio of consecutive schedule values, so two
schedulers on one optimizer compose and a manual change of `group["lr"]` carries forward.
The docstrings give the closed forms these recursions follow; the recursions themselves are
PyTorch's, so the values agree to the last bit, not merely to rounding.

`state_dict()` holds only Python numbers, bools, strings, lists and dicts (JSON-ready; a
LambdaLR's functions are not saved, as in PyTorch). Not taken from PyTorch: the `last_epoch`
constructor argument (resume with `load_state_dict`) and the deprecated `step(epoch)` (but
CosineAnnealingWarmRestarts' own `step(epoch)` is there).
"""

from __future__ import annotations

import copy
import itertools
import math
import numbers
import types
from bisect import bisect_right
from collections import Counter

from .optimizer import Optimizer


class LRScheduler:
    """Base class: subclasses implement `get_lr()`, the lrs for epoch `self.last_epoch`.

    `last_epoch` counts `step()` calls (0 right after construction); `base_lrs` are the
    groups' `initial_lr`; `get_last_lr()` returns the lrs the last step set.
    """

    def __init__(self, optimizer: Optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self._initial_step()

    def _initial_step(self) -> None:
        """Step to epoch 0 (`get_lr` sees `_is_initial` and may keep the current lr)."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        """The lrs for epoch `last_epoch`, one per group (called by `step`)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement get_lr()")

    def get_last_lr(self) -> list[float]:
        """The lrs the most recent `step()` (or the constructor) set, one per group."""
        return list(self._last_lr)

    def step(self) -> None:
        """Advance one epoch and write the new lrs into the optimizer's groups."""
        self._step_count += 1
        self._update_lr()

    def _update_lr(self, epoch: int | None = None) -> None:
        """Next epoch, or jump to `epoch` (closed form where the scheduler has one, as
        PyTorch's SequentialLR does when it hands over at a milestone)."""
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed_form = getattr(self, "_closed_form_lr", None)
            values = closed_form() if closed_form is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _current_lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    # ------------------------------------------------------------------ state dict
    def state_dict(self) -> dict:
        """Every attribute but the optimizer (a snapshot)."""
        return {key: copy.deepcopy(value) for key, value in vars(self).items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore attributes saved by `state_dict()` of the same kind of scheduler.

        The optimizer's lrs are not touched: they come back with the optimizer's own
        `load_state_dict` (build the scheduler first, then load both)."""
        _check_keys(self, expected=set(self.state_dict()), given=set(state_dict))
        self.__dict__.update(copy.deepcopy(state_dict))


def _check_keys(scheduler, expected: set, given: set) -> None:
    if expected != given:
        raise ValueError(
            f"{type(scheduler).__name__}.load_state_dict: missing keys {sorted(expected - given)}, "
            f"unexpected keys {sorted(given - expected)} (was it saved by another scheduler?)"
        )


def _check_positive_int(owner: str, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")


class StepLR(LRScheduler):
    """Multiply the lr by `gamma` every `step_size` epochs.

    lr_t = base_lr · gamma^⌊t / step_size⌋
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        _check_positive_int("StepLR", "step_size", step_size)
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]

    def _closed_form_lr(self) -> list[float]:
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size) for base_lr in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the lr by `gamma` at each milestone (a milestone listed k times: gamma^k).

    lr_t = base_lr · gamma^(number of milestones <= t)
    """

    def __init__(self, optimizer: Optimizer, milestones, gamma: float = 0.1):
        milestones = list(milestones)
        for m in milestones:
            if isinstance(m, bool) or not isinstance(m, numbers.Integral):
                raise ValueError(f"MultiStepLR: milestones must be integers, got {milestones!r}")
        self.milestones = Counter(milestones)
        self.gamma = gamma
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        if self.last_epoch not in self.milestones:
            return self._current_lrs()
        return [lr * self.gamma ** self.milestones[self.last_epoch] for lr in self._current_lrs()]

    def _closed_form_lr(self) -> list[float]:
        passed = bisect_right(sorted(self.milestones.elements()), self.last_epoch)
        return [base_lr * self.gamma**passed for base_lr in self.base_lrs]

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["milestones"] = sorted(self.milestones.elements())  # JSON keys must be strings
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self.milestones = Counter(state_dict["milestones"])


class LinearLR(LRScheduler):
    """Scale the lr linearly from `start_factor` to `end_factor` over `total_iters` epochs
    (a warmup with the defaults), then hold it.

        lr_t = base_lr · (start_factor + (end_factor - start_factor) · min(t, total_iters) / total_iters)
    """

    def __init__(
        self, optimizer: Optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5
    ):
        if not 0 < start_factor <= 1:
            raise ValueError(f"LinearLR: start_factor must be in (0, 1], got {start_factor!r}")
        if not 0 <= end_factor <= 1:
            raise ValueError(f"LinearLR: end_factor must be in [0, 1], got {end_factor!r}")
        _check_positive_int("LinearLR", "total_iters", total_iters)
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0:
            return [lr * self.start_factor for lr in self._current_lrs()]
        if self._is_initial or self.last_epoch > self.total_iters:
            return self._current_lrs()
        # factor_t / factor_(t-1) of the closed form
        slope = self.end_factor - self.start_factor
        ratio = 1.0 + slope / (self.total_iters * self.start_factor + (self.last_epoch - 1) * slope)
        return [lr * ratio for lr in self._current_lrs()]

    def _closed_form_lr(self) -> list[float]:
        progress = min(self.total_iters, self.last_epoch) / self.total_iters
        return [
            base_lr * (self.start_factor + (self.end_factor - self.start_factor) * progress)
            for base_lr in self.base_lrs
        ]


class CosineAnnealingLR(LRScheduler):
    """Anneal the lr from base_lr to `eta_min` along a half cosine over `T_max` epochs (SGDR
    without restarts). Past T_max the cosine continues, climbing back up, as in PyTorch.

        lr_t = eta_min + (base_lr - eta_min) · (1 + cos(π·t / T_max)) / 2
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0):
        _check_positive_int("CosineAnnealingLR", "T_max", T_max)
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return self._current_lrs()
        if (self.last_epoch - 1 - self.T_max) % (2 * self.T_max) == 0:
            # Leaving the minimum, where the ratio below would divide by zero: add the first
            # step of the rise instead.
            rise = (1 - math.cos(math.pi / self.T_max)) / 2
            return [lr + (base_lr - self.eta_min) * rise for lr, base_lr in zip(self._current_lrs(), self.base_lrs)]
        ratio = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / (
            1 + math.cos(math.pi * (self.last_epoch - 1) / self.T_max)
        )
        return [ratio * (lr - self.eta_min) + self.eta_min for lr in self._current_lrs()]

    def _closed_form_lr(self) -> list[float]:
        cosine = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (base_lr - self.eta_min) * cosine for base_lr in self.base_lrs]


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin, 2017), stepped once per batch for `total_steps`
    (or `epochs · steps_per_epoch`) batches.

    The lr rises from max_lr/div_factor to max_lr over the first `pct_start` of the steps,
    then falls to max_lr/(div_factor·final_div_factor); with `three_phase` it first falls back
    to the initial lr (symmetrically) and only then to the minimum. Each phase anneals from a
    to b with ``b + (a - b)·(1 + cos(π·pct))/2`` ("cos") or ``a + (b - a)·pct`` ("linear"),
    pct going from 0 to 1 across the phase; phase ends are at steps pct_start·total - 1
    (then 2·pct_start·total - 2 with three_phase) and total - 1.

    With `cycle_momentum`, momentum (SGD) or beta1 (Adam, AdamW) cycles the other way, from
    max_momentum down to base_momentum and back. Groups get `initial_lr`, `max_lr`, `min_lr`
    (and `max_momentum`, `base_momentum`); `initial_lr` is overwritten, unlike the other
    schedulers. Stepping past `total_steps` is an error.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr,
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum=0.85,
        max_momentum=0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
    ):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"OneCycleLR: expected an Optimizer, got {type(optimizer).__name__}")
        if total_steps is not None:
            _check_positive_int("OneCycleLR", "total_steps", total_steps)
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            _check_positive_int("OneCycleLR", "epochs", epochs)
            _check_positive_int("OneCycleLR", "steps_per_epoch", steps_per_epoch)
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("OneCycleLR: give total_steps, or epochs and steps_per_epoch")
        if isinstance(pct_start, bool) or not isinstance(pct_start, numbers.Real) or not 0 <= pct_start <= 1:
            raise ValueError(f"OneCycleLR: pct_start must be a number in [0, 1], got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy

        # Phases name the group keys they anneal between (kept as strings: JSON-ready).
        if three_phase:
            self._schedule_phases = [
                {"end_step": float(pct_start * self.total_steps) - 1, "start_lr": "initial_lr", "end_lr": "max_lr",
                 "start_momentum": "max_momentum", "end_momentum": "base_momentum"},
                {"end_step": float(2 * pct_start * self.total_steps) - 2, "start_lr": "max_lr", "end_lr": "initial_lr",
                 "start_momentum": "base_momentum", "end_momentum": "max_momentum"},
                {"end_step": self.total_steps - 1, "start_lr": "initial_lr", "end_lr": "min_lr",
                 "start_momentum": "max_momentum", "end_momentum": "max_momentum"},
            ]  # fmt: skip
        else:
            self._schedule_phases = [
                {"end_step": float(pct_start * self.total_steps) - 1, "start_lr": "initial_lr", "end_lr": "max_lr",
                 "start_momentum": "max_momentum", "end_momentum": "base_momentum"},
                {"end_step": self.total_steps - 1, "start_lr": "max_lr", "end_lr": "min_lr",
                 "start_momentum": "base_momentum", "end_momentum": "max_momentum"},
            ]  # fmt: skip

        groups = optimizer.param_groups
        for group, group_max_lr in zip(groups, _per_group("max_lr", max_lr, groups), strict=True):
            group["initial_lr"] = group_max_lr / div_factor
            group["max_lr"] = group_max_lr
            group["min_lr"] = group["initial_lr"] / final_div_factor

        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError(
                    f"OneCycleLR: cycle_momentum=True needs an optimizer with momentum or betas; "
                    f"{type(optimizer).__name__} has neither (pass cycle_momentum=False)"
                )
            self.use_beta1 = "betas" in optimizer.defaults
            maxima = _per_group("max_momentum", max_momentum, groups)
            bases = _per_group("base_momentum", base_momentum, groups)
            for group, group_max, group_base in zip(groups, maxima, bases, strict=True):
                self._set_momentum(group, group_max)
                group["max_momentum"] = group_max
                group["base_momentum"] = group_base
        super().__init__(optimizer)

    def _set_momentum(self, group: dict, value: float) -> None:
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {step} times; total_steps is {self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, phase in enumerate(self._schedule_phases):
                end_step = phase["end_step"]
                if step <= end_step or i == len(self._schedule_phases) - 1:
                    pct = (step - start_step) / (end_step - start_step)
                    lrs.append(self._anneal(group[phase["start_lr"]], group[phase["end_lr"]], pct))
                    if self.cycle_momentum:
                        momentum = self._anneal(group[phase["start_momentum"]], group[phase["end_momentum"]], pct)
                        self._set_momentum(group, momentum)
                    break
                start_step = end_step
        return lrs


def _per_group(name: str, value, groups: list) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != len(groups):
            raise ValueError(
                f"OneCycleLR: {name} has {len(value)} values but the optimizer has {len(groups)} parameter groups"
            )
        return list(value)
    return [value] * len(groups)


class SequentialLR(LRScheduler):
    """Run `schedulers` one after another, switching at the epochs in `milestones`.

    E.g. a 5-epoch warmup then cosine decay::

        SequentialLR(opt, [LinearLR(opt, 0.1, total_iters=5), CosineAnnealingLR(opt, 95)], milestones=[5])

    At a milestone the next scheduler restarts at its epoch 0 (from its base lr, closed
    form), as in PyTorch. The schedulers must all drive `optimizer`.
    """

    def __init__(self, optimizer: Optimizer, schedulers: list, milestones: list):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"SequentialLR: expected an Optimizer, got {type(optimizer).__name__}")
        schedulers, milestones = list(schedulers), list(milestones)
        if not schedulers:
            raise ValueError("SequentialLR: expects at least one scheduler")
        for i, scheduler in enumerate(schedulers):
            if not isinstance(scheduler, LRScheduler):
                raise TypeError(f"SequentialLR: schedulers[{i}] is a {type(scheduler).__name__}, not an LRScheduler")
            if scheduler.optimizer is not optimizer:
                raise ValueError(f"SequentialLR: schedulers[{i}] ({type(scheduler).__name__}) drives another optimizer")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                f"SequentialLR: expects one milestone fewer than schedulers; "
                f"got {len(schedulers)} schedulers and {len(milestones)} milestones"
            )
        if any(later <= earlier for earlier, later in itertools.pairwise(milestones)):
            raise ValueError(f"SequentialLR: milestones must be increasing, got {milestones}")
        self.optimizer = optimizer
        self._schedulers = schedulers
        self._milestones = milestones
        self.last_epoch = 0

        # Each scheduler stepped to its epoch 0 when built: undo that, restore the initial
        # lrs, and start only the scheduler that owns epoch 0.
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        self._undo_initial_steps(self)
        first = schedulers[bisect_right(milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    @classmethod
    def _undo_initial_steps(cls, scheduler) -> None:
        if isinstance(scheduler, SequentialLR):
            for inner in scheduler._schedulers:
                cls._undo_initial_steps(inner)
        else:
            scheduler.last_epoch -= 1

    def step(self) -> None:
        self.last_epoch += 1
        i = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[i]
        if i > 0 and self._milestones[i - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()

    def state_dict(self) -> dict:
        state = {
            key: copy.deepcopy(value) for key, value in vars(self).items() if key not in ("optimizer", "_schedulers")
        }
        state["_schedulers"] = [scheduler.state_dict() for scheduler in self._schedulers]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        inner = state_dict.get("_schedulers")
        if not isinstance(inner, list) or len(inner) != len(self._schedulers):
            raise ValueError(
                f"SequentialLR.load_state_dict: expected {len(self._schedulers)} scheduler states in '_schedulers'"
            )
        outer = {key: value for key, value in state_dict.items() if key != "_schedulers"}
        expected = {key for key in vars(self) if key not in ("optimizer", "_schedulers")}
        if set(outer) != expected:
            raise ValueError(
                f"SequentialLR.load_state_dict: missing keys {sorted(expected - set(outer))}, "
                f"unexpected keys {sorted(set(outer) - expected)}"
            )
        for scheduler, scheduler_state in zip(self._schedulers, inner):
            scheduler.load_state_dict(scheduler_state)
        self.__dict__.update(copy.deepcopy(outer))


class ExponentialLR(LRScheduler):
    """Multiply the lr by `gamma` every epoch.

    lr_t = base_lr · gamma^t
    """

    def __init__(self, optimizer: Optimizer, gamma: float):
        self.gamma = gamma
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]

    def _closed_form_lr(self) -> list[float]:
        return [base_lr * self.gamma**self.last_epoch for base_lr in self.base_lrs]


class LambdaLR(LRScheduler):
    """Set each group's lr to its base lr times a function of the epoch.

        lr_t = base_lr · lr_lambda(t)

    `lr_lambda`: one function for every group, or a list with one per group. As in PyTorch,
    `state_dict()` does not save plain functions (lambdas, `def`s): their entries in
    `"lr_lambdas"` are None, so a resumed run must build the scheduler with the same
    functions. A callable object's attributes (its `__dict__`) are saved and restored.
    """

    def __init__(self, optimizer: Optimizer, lr_lambda):
        groups = optimizer.param_groups if isinstance(optimizer, Optimizer) else []
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != len(groups):
                raise ValueError(
                    f"LambdaLR: expected {len(groups)} lr_lambdas (one per parameter group), got {len(lr_lambda)}"
                )
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * len(groups)
        for i, fn in enumerate(self.lr_lambdas):
            if not callable(fn):
                raise TypeError(f"LambdaLR: lr_lambda[{i}] must be callable, got {type(fn).__name__}")
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return [base_lr * fn(self.last_epoch) for fn, base_lr in zip(self.lr_lambdas, self.base_lrs, strict=True)]

    def state_dict(self) -> dict:
        state = {
            key: copy.deepcopy(value) for key, value in vars(self).items() if key not in ("optimizer", "lr_lambdas")
        }
        state["lr_lambdas"] = [
            None if isinstance(fn, types.FunctionType) else copy.deepcopy(fn.__dict__) for fn in self.lr_lambdas
        ]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        _check_keys(self, expected=set(self.state_dict()), given=set(state_dict))
        saved_lambdas = state_dict["lr_lambdas"]
        if not isinstance(saved_lambdas, list) or len(saved_lambdas) != len(self.lr_lambdas):
            raise ValueError(
                f"LambdaLR.load_state_dict: expected a list of {len(self.lr_lambdas)} entries in 'lr_lambdas'"
            )
        self.__dict__.update(copy.deepcopy({key: value for key, value in state_dict.items() if key != "lr_lambdas"}))
        for fn, saved in zip(self.lr_lambdas, saved_lambdas):
            if saved is not None:
                fn.__dict__.update(copy.deepcopy(saved))


class ReduceLROnPlateau(LRScheduler):
    """Multiply the lr by `factor` when a metric has stopped improving for `patience` epochs.

    Call `step(metric)` once per epoch with the validation metric. The metric improves on
    `best` when, for mode "min" (the "max" mode mirrors it)::

        metric < best·(1 - threshold)     threshold_mode "rel"
        metric < best - threshold         threshold_mode "abs"

    After more than `patience` epochs without improvement each group's lr becomes
    max(lr·factor, min_lr) (a change smaller than `eps` is skipped), then `cooldown` epochs
    pass in which bad epochs are not counted. As in PyTorch it sets no `initial_lr` and has no
    `base_lrs`; `get_last_lr()` gives the groups' lrs after the last step.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr=0,
        eps: float = 1e-8,
    ):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"ReduceLROnPlateau: expected an Optimizer, got {type(optimizer).__name__}")
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be < 1.0, got {factor!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        groups = optimizer.param_groups
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(groups):
                raise ValueError(
                    f"ReduceLROnPlateau: expected {len(groups)} min_lrs (one per parameter group), got {len(min_lr)}"
                )
            self.default_min_lr = None
            self.min_lrs = list(min_lr)
        else:
            self.default_min_lr = min_lr
            self.min_lrs = [min_lr] * len(groups)
        self.optimizer = optimizer
        self.factor = factor
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = self._current_lrs()
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self._reset()

    def _reset(self) -> None:
        """Forget the best metric and the bad-epoch and cooldown counters."""
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def step(self, metrics=None) -> None:
        """Record one epoch's metric (a number or a one-element Tensor); reduce the lr on a plateau."""
        if metrics is None:
            raise TypeError(
                "ReduceLROnPlateau.step: expected the epoch's metric, as step(metric) (e.g. the validation loss)"
            )
        current = float(metrics)
        self.last_epoch += 1
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._current_lrs()

    def _reduce_lr(self) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise ValueError(
                    f"ReduceLROnPlateau: the optimizer has {len(groups)} parameter groups but min_lrs has "
                    f"{len(self.min_lrs)} (a group was added); set min_lrs to one value per group"
                )
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, min_lr in zip(groups, self.min_lrs):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, min_lr)
            if old_lr - new_lr > self.eps:
                group["lr"] = new_lr

    def _is_better(self, current: float, best: float) -> bool:
        if self.mode == "min" and self.threshold_mode == "rel":
            return current < best * (1.0 - self.threshold)
        if self.mode == "min":
            return current < best - self.threshold
        if self.threshold_mode == "rel":
            return current > best * (self.threshold + 1.0)
        return current > best + self.threshold

    def get_lr(self) -> list[float]:
        raise NotImplementedError("ReduceLROnPlateau: the lr depends on the metrics; call step(metric)")


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine annealing from base_lr to `eta_min` over T_i epochs, then restart at base_lr
    (SGDR, Loshchilov & Hutter 2017); the first period is `T_0`, each next one `T_mult` times
    longer.

        lr = eta_min + (base_lr - eta_min) · (1 + cos(π·T_cur / T_i)) / 2

    T_cur counts the epochs since the last restart. `step()` advances one epoch; `step(epoch)`
    jumps to `epoch`, which may be fractional (`step(epoch + i / iters_per_epoch)` after each
    batch), as PyTorch's.
    """

    def __init__(self, optimizer: Optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0):
        if isinstance(T_0, bool) or not isinstance(T_0, int) or T_0 <= 0:
            raise ValueError(f"CosineAnnealingWarmRestarts: T_0 must be a positive integer, got {T_0!r}")
        if isinstance(T_mult, bool) or not isinstance(T_mult, int) or T_mult < 1:
            raise ValueError(f"CosineAnnealingWarmRestarts: T_mult must be an integer >= 1, got {T_mult!r}")
        if isinstance(eta_min, bool) or not isinstance(eta_min, (float, int)):
            raise ValueError(f"CosineAnnealingWarmRestarts: eta_min must be a number, got {eta_min!r}")
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = -1
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        cosine = 1 + math.cos(math.pi * self.T_cur / self.T_i)
        return [self.eta_min + (base_lr - self.eta_min) * cosine / 2 for base_lr in self.base_lrs]

    def step(self, epoch=None) -> None:
        """Advance one epoch, or jump to `epoch` (a non-negative number, fractional allowed)."""
        self._step_count += 1
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            if epoch < 0:
                raise ValueError(f"CosineAnnealingWarmRestarts: epoch must be non-negative, got {epoch!r}")
            self.T_cur, self.T_i = self._position(epoch)
        self.last_epoch = math.floor(epoch)
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            group["lr"] = lr
        self._last_lr = self._current_lrs()

    def _position(self, epoch: float) -> tuple[float, int]:
        """(T_cur, T_i) at `epoch`: the periods T_0, T_0·T_mult, ... end at T_0·(T_mult^n - 1)/(T_mult - 1)."""
        if epoch < self.T_0:
            return epoch, self.T_0
        if self.T_mult == 1:
            return epoch % self.T_0, self.T_0
        n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
        return epoch - self.T_0 * (self.T_mult**n - 1) / (self.T_mult - 1), self.T_0 * self.T_mult**n
