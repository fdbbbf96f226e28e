"""`Trainer`: the training loop, with a run log, checkpoints and exact resume.

    trainer = Trainer(model, optimizer, loss_fn, train_loader, val_loader, run_dir="runs/exp1",
                      epochs=10, scheduler=scheduler, metrics={"mean_auroc": mean_auroc},
                      best_metric="mean_auroc", checkpoint_every=200)
    summary = trainer.fit(resume=True)   # continues from runs/exp1/checkpoints/latest.npz if present

Per step it logs loss, learning rate, samples per second, and the seconds spent waiting for the
batch (`data_time`) and computing the step (`step_time`: a loader that keeps up makes
`data_time` near 0) (split "train"), and every
`grad_norm_every` steps the L2 norm of every parameter's gradient (split "grad_norm"); per
epoch the validation loss and metrics (split "val"). It writes `checkpoints/latest.npz` every
`checkpoint_every` steps and at each epoch's end, and `checkpoints/best.npz` when `best_metric`
improves. The scheduler steps every step (`scheduler_interval="step"`) or every epoch; a
`ReduceLROnPlateau` steps once per epoch after validation, on `plateau_metric` ("loss" or a
metric's name), and a resumed run that validates an epoch first steps it there.

Resuming restores model, optimizer, scheduler, progress and RNG states and positions the
training data at the next batch, so with a loader whose order is a function of (seed, epoch)
(kinone.data's DataLoader, num_workers=0) an interrupted run ends with the same weights as an
uninterrupted one.

Data parallel (`distributed=`, one process per rank; see kinone-distributed's README). The object given
has kinone.distributed's functions (the module itself qualifies; kinone.train never imports it):
`is_main()`, `world_size()`, `allreduce_gradients(parameters)`, `all_gather(array)`,
`average_buffers(module)`, `broadcast_parameters(module)`, `broadcast_state(state)`,
`check_same_everywhere(name, value)`. Then:

- after backward, before the optimizer step, the gradients are averaged over the ranks (the
  grad-norm records are those of the averaged gradients);
- the loss and samples per second logged are the global batch's (a gather of two numbers per
  step, which also carries every rank's Ctrl-C flag, so all ranks stop at the same step);
- validation gathers every rank's predictions and targets and computes the loss and metrics
  once, over the whole split: with a loader whose `sampler` yields the dataset indices (a
  DistributedSampler), the padding such a sampler adds is dropped by index, and the rows are
  put in dataset order, as one process would see them;
- batch-norm running statistics are averaged over the ranks before validation and before
  every checkpoint;
- rank 0 alone writes run.json, metrics.jsonl and the checkpoints (the others log into a
  `NullRunWriter`); every rank resumes from the same checkpoint (the run directory must be on
  a file system every rank sees, as on one machine or a cluster's shared home), after which
  the parameters and the optimizer's and scheduler's states are broadcast from rank 0.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from kinone.autograd import Tensor, no_grad
from kinone.optim.lr_scheduler import ReduceLROnPlateau

from .checkpoint import capture_rng_state, load_training_state, restore_rng_state, save_checkpoint
from .run_log import NullRunWriter, RunWriter


def _as_tensor(x, device=None):
    """A batch part as a Tensor on `device` (host arrays are copied there, as PyTorch's
    `batch.to(device)`)."""
    t = x if isinstance(x, Tensor) else Tensor(np.asarray(x))
    return t if device is None else t.to(device)


def _current_lr(optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def _batches(loader, epoch: int, start_batch: int) -> Iterable:
    """The loader's batches of `epoch` from `start_batch` on, without loading the skipped ones
    when the loader can position itself: kinone.data's DataLoader (`load_state_dict` with
    `epoch` and `batches_done`), or any loader with `set_epoch` and `iter_from(start)`.
    Otherwise it iterates and drops the first batches."""
    if hasattr(loader, "load_state_dict") and hasattr(loader, "state_dict"):
        state = loader.state_dict()
        if isinstance(state, dict) and "batches_done" in state:
            loader.load_state_dict({**state, "epoch": epoch, "batches_done": start_batch})
            return iter(loader)
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    if start_batch and hasattr(loader, "iter_from"):
        return loader.iter_from(start_batch)
    iterator = iter(loader)
    for _ in range(start_batch):
        next(iterator, None)
    return iterator


class Trainer:
    """Runs epochs of training and validation over a model (see the module docstring)."""

    def __init__(
        self,
        model,
        optimizer,
        loss_fn: Callable,
        train_data,
        val_data=None,
        *,
        run_dir,
        epochs: int = 1,
        scheduler=None,
        scheduler_interval: str = "step",
        plateau_metric: str = "loss",
        metrics: dict[str, Callable] | None = None,
        best_metric: str | None = None,
        best_mode: str = "max",
        max_steps: int | None = None,
        checkpoint_every: int | None = None,
        grad_norm_every: int = 50,
        config: dict | None = None,
        model_name: str | None = None,
        progress: Callable | None = None,
        callbacks: Iterable[Callable] = (),
        epoch_callbacks: Iterable[Callable] = (),
        device=None,
        distributed=None,
    ):
        if scheduler_interval not in ("step", "epoch"):
            raise ValueError(f"Trainer: scheduler_interval must be 'step' or 'epoch', got {scheduler_interval!r}")
        if isinstance(scheduler, ReduceLROnPlateau):
            if val_data is None or scheduler_interval != "epoch":
                raise ValueError(
                    "Trainer: ReduceLROnPlateau steps once per epoch on a validation figure: give "
                    "val_data and scheduler_interval='epoch'"
                )
            if plateau_metric != "loss" and plateau_metric not in (metrics or {}):
                raise ValueError(
                    f"Trainer: plateau_metric {plateau_metric!r} is neither 'loss' nor one of the "
                    f"metrics {sorted(metrics or {})}"
                )
        if best_mode not in ("max", "min"):
            raise ValueError(f"Trainer: best_mode must be 'max' or 'min', got {best_mode!r}")
        if best_metric is not None and best_metric != "loss" and best_metric not in (metrics or {}):
            raise ValueError(
                f"Trainer: best_metric {best_metric!r} is neither 'loss' nor one of the metrics {sorted(metrics or {})}"
            )
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.train_data, self.val_data = train_data, val_data
        self.run_dir = Path(run_dir)
        self.epochs, self.scheduler, self.scheduler_interval = epochs, scheduler, scheduler_interval
        self.plateau_metric = plateau_metric
        self.metrics = dict(metrics or {})
        self.best_metric, self.best_mode = best_metric, best_mode
        self.max_steps, self.checkpoint_every, self.grad_norm_every = max_steps, checkpoint_every, grad_norm_every
        self.config, self.model_name = config or {}, model_name or type(model).__name__
        self.progress = progress or (lambda iterable, **kwargs: iterable)
        self.callbacks = list(callbacks)
        self.epoch_callbacks = list(epoch_callbacks)
        # Batches go where the model is (PyTorch's loop does `batch.to(device)` by hand).
        self.device = device if device is not None else _model_device(model)
        # Data parallel: an object with kinone.distributed's functions (module docstring).
        self.distributed = distributed
        self.is_main = distributed is None or bool(distributed.is_main())
        if distributed is not None and "world_size" not in self.config:
            self.config = {**self.config, "world_size": int(distributed.world_size())}
        self.resumed_from: dict | None = None
        self.latest_path = self.run_dir / "checkpoints" / "latest.npz"
        self.best_path = self.run_dir / "checkpoints" / "best.npz"

    # ------------------------------------------------------------------ checkpoints
    def _save(self, path: Path, epoch: int, batch: int, step: int, best, rng_state=None, validated=True) -> None:
        if self.distributed is not None:
            self.distributed.average_buffers(self.model)  # every rank calls _save at the same points
        if self.is_main:
            save_checkpoint(
                path,
                self.model,
                self.optimizer,
                self.scheduler,
                rng_state=rng_state,
                epoch=epoch,
                batch=batch,
                step=step,
                best=best,
                validated=validated,
            )

    def _is_better(self, value, best) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        return best is None or (value > best if self.best_mode == "max" else value < best)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, data) -> dict:
        """Mean loss and every metric over `data`, in eval mode and without a graph (data
        parallel: over every rank's part of `data`, see the module docstring)."""
        self.model.eval()
        if self.distributed is not None:
            self.distributed.average_buffers(self.model)
            order = _sample_order(data)
        total_loss, count, scores, targets = 0.0, 0, [], []
        with no_grad():
            for inputs, target in self.progress(data, desc="validate", leave=False):
                inputs, target = _as_tensor(inputs, self.device), _as_tensor(target, self.device)
                output = self.model(inputs)
                n = len(target)
                total_loss += float(self.loss_fn(output, target).item()) * n
                count += n
                scores.append(output.numpy())  # metrics are computed on the host
                targets.append(target.numpy())
        if self.distributed is not None:
            return self._evaluate_gathered(total_loss, count, scores, targets, order)
        if count == 0:
            return {}
        return self._metric_results(total_loss / count, np.concatenate(scores), np.concatenate(targets))

    def _metric_results(self, loss: float, scores_all: np.ndarray, targets_all: np.ndarray) -> dict:
        results = {"loss": loss}
        for name, metric in self.metrics.items():
            value = metric(targets_all, scores_all)
            results[name] = value.tolist() if isinstance(value, np.ndarray) else float(value)
        return results

    def _evaluate_gathered(self, total_loss: float, count: int, scores: list, targets: list, order) -> dict:
        """Every rank's predictions and targets gathered (in rank order), the padding a
        distributed sampler repeats dropped by dataset index, then loss and metrics once."""
        gather = self.distributed.all_gather
        counts = np.asarray(gather(np.array([count], dtype=np.int64)))
        if int(counts.sum()) == 0:
            return {}
        if count == 0:
            raise ValueError(
                f"Trainer.evaluate: this rank got no validation batch while others got {counts.tolist()} "
                "samples; give every rank a part of the data (a DistributedSampler pads to equal parts)"
            )
        scores_all = np.asarray(gather(np.concatenate(scores)))
        targets_all = np.asarray(gather(np.concatenate(targets)))
        known = order is not None and len(order) >= count
        if all(np.asarray(gather(np.array([known], dtype=np.uint8))).astype(bool)):
            indices = np.asarray(gather(np.asarray(order[:count], dtype=np.int64)))
            _, first = np.unique(indices, return_index=True)  # sorted by dataset index
            scores_all, targets_all = scores_all[first], targets_all[first]
            loss = float(self.loss_fn(_as_tensor(scores_all, self.device), _as_tensor(targets_all, self.device)).item())
        else:  # no sampler to tell the samples apart: every row counts
            losses = np.asarray(gather(np.array([total_loss], dtype=np.float64)))
            loss = float(losses.sum() / counts.sum())
        return self._metric_results(loss, scores_all, targets_all)

    def _log_grad_norms(self, writer: RunWriter, step: int, epoch: int) -> None:
        norms = {}
        for name, p in self.model.named_parameters():
            if p.grad is not None:
                g = p.grad.data
                norms[name] = float(np.sqrt(np.vdot(g, g).real))
        writer.log(step, epoch, "grad_norm", **norms)

    # ------------------------------------------------------------------ the loop
    def fit(self, resume: bool = False) -> dict:
        """Train for `epochs` (or until `max_steps`), validating after each epoch. With
        `resume=True`, continue the run in `run_dir` from its `latest.npz` (or restart it from
        step 0 when it stopped before its first checkpoint). Without `resume`, a run directory
        that already holds a run (`run.json`) is refused: a run is never overwritten.

        Ctrl-C (SIGINT, in the main thread) stops at the end of the current step: the latest
        checkpoint is written there, run.json says "interrupted", and `TrainingInterrupted`
        is raised. A second Ctrl-C interrupts at once."""
        # Rank 0's view of the run directory decides for every rank (read before it writes).
        if not resume and self._main_says((self.run_dir / "run.json").exists()):
            raise FileExistsError(
                f"Trainer: {self.run_dir} already holds a run (run.json); "
                "resume it with fit(resume=True) or choose another run_dir"
            )
        resuming = resume and self._main_says(self.latest_path.exists())
        writer_type = RunWriter if self.is_main else NullRunWriter
        writer = writer_type(
            self.run_dir,
            config=self.config,
            model_name=self.model_name,
            num_parameters=self.model.num_parameters(),
            resume=resume,
        )
        state = _Progress()
        self.resumed_from = None
        stop = _StopRequest()
        try:
            with stop.on_sigint():
                if resuming:
                    self._resume(state, writer)
                elif resume:
                    # Stopped before its first checkpoint: the records it wrote are redone.
                    writer.log_event("resume", step=0, epoch=0, batch=0)
                self._run_epochs(state, writer, stop)
        except TrainingInterrupted as interrupted:
            writer.close("interrupted", step=state.step, epoch=state.epoch)
            interrupted.checkpoint = self.latest_path
            raise
        except BaseException as error:
            writer.close("failed", step=state.step, error=f"{type(error).__name__}: {error}")
            raise
        summary = {
            "epoch": state.epoch,
            "step": state.step,
            "best": state.best,
            "best_metric": self.best_metric,
            "val": state.last_val,
        }
        writer.close("finished", step=state.step, best=state.best, best_metric=self.best_metric)
        return summary

    def _resume(self, state: _Progress, writer: RunWriter) -> None:
        # The RNG states are restored once the data is positioned (positioning may draw).
        progress, state.rng_state = load_training_state(self.latest_path, self.model, self.optimizer, self.scheduler)
        if self.distributed is not None:
            self._share_resumed_state(progress)
        state.epoch, state.start_batch, state.step, state.best = (
            progress["epoch"],
            progress["batch"],
            progress["step"],
            progress["best"],
        )
        self.resumed_from = {
            "checkpoint": str(self.latest_path),
            "epoch": state.epoch,
            "batch": state.start_batch,
            "step": state.step,
        }
        writer.log_event("resume", step=state.step, epoch=state.epoch, batch=state.start_batch)
        if not progress.get("validated", True):
            # Stopped after the epoch's checkpoint, before (or during) its validation.
            restore_rng_state(state.rng_state)
            state.rng_state = None
            self._validate(state, writer, epoch_done=state.epoch)
            self._save(self.latest_path, state.epoch, 0, state.step, state.best)

    def _share_resumed_state(self, progress: dict) -> None:
        """Data parallel: every rank read the same checkpoint (checked), then rank 0's
        parameters and optimizer and scheduler states are broadcast to all."""
        dist = self.distributed
        dist.check_same_everywhere(
            "the resumed checkpoint's progress", {k: progress.get(k) for k in ("epoch", "batch", "step")}
        )
        dist.broadcast_parameters(self.model)
        self.optimizer.load_state_dict(dist.broadcast_state(self.optimizer.state_dict()))
        if self.scheduler is not None:
            self.scheduler.load_state_dict(dist.broadcast_state(self.scheduler.state_dict()))

    def _main_says(self, flag: bool) -> bool:
        """`flag` as rank 0 sees it, on every rank (itself without `distributed`)."""
        if self.distributed is None:
            return bool(flag)
        return bool(np.asarray(self.distributed.all_gather(np.array([flag], dtype=np.uint8)))[0])

    def _any_rank(self, flag: bool) -> bool:
        """Whether `flag` is set on any rank (itself without `distributed`)."""
        if self.distributed is None:
            return bool(flag)
        return bool(np.asarray(self.distributed.all_gather(np.array([flag], dtype=np.uint8))).any())

    def _global_step_figures(self, loss_value: float, samples: int, stop_requested: bool) -> tuple[float, int, bool]:
        """The global batch's mean loss and size, and whether any rank was asked to stop: one
        gather of three numbers per rank (without `distributed`: the arguments)."""
        if self.distributed is None:
            return loss_value, samples, stop_requested
        mine = np.array([loss_value * samples, samples, float(stop_requested)], dtype=np.float64)
        every = np.asarray(self.distributed.all_gather(mine)).reshape(-1, 3)
        total = int(every[:, 1].sum())
        return float(every[:, 0].sum() / max(total, 1)), total, bool(every[:, 2].any())

    def _validate(self, state: _Progress, writer: RunWriter, epoch_done: int, batch: int = 0) -> None:
        """Validate, log, and write best.npz when the best metric improved. `epoch_done`/`batch`:
        where training resumes from the best checkpoint."""
        if self.val_data is None:
            return
        state.last_val = self.evaluate(self.val_data)
        writer.log(state.step, epoch_done - 1 if batch == 0 else epoch_done, "val", **state.last_val)
        value = state.last_val.get(self.best_metric) if self.best_metric else None
        if isinstance(self.scheduler, ReduceLROnPlateau) and batch == 0:  # once per finished epoch
            self.scheduler.step(state.last_val[self.plateau_metric])
        if self._is_better(value, state.best):
            state.best = value
            self._save(self.best_path, epoch_done, batch, state.step, state.best)
        for callback in self.epoch_callbacks:
            callback(self, epoch=epoch_done - 1 if batch == 0 else epoch_done, step=state.step, results=state.last_val)

    def _run_epochs(self, state: _Progress, writer: RunWriter, stop: _StopRequest) -> None:
        while state.epoch < self.epochs and not self._done(state.step):
            self.model.train()
            batches = _batches(self.train_data, state.epoch, state.start_batch)
            if state.rng_state is not None:
                restore_rng_state(state.rng_state)
                state.rng_state = None
            total = len(self.train_data) if hasattr(self.train_data, "__len__") else None
            batch = state.start_batch
            tick = time.perf_counter()
            for inputs, target in self.progress(
                batches, total=total, initial=state.start_batch, desc=f"epoch {state.epoch + 1}"
            ):
                arrived = time.perf_counter()  # until here the loop waited for data
                loss_value, samples = self._train_step(state, writer, inputs, target)
                loss_value, samples, stop.requested = self._global_step_figures(loss_value, samples, stop.requested)
                batch += 1
                now = time.perf_counter()
                writer.log(
                    state.step,
                    state.epoch,
                    "train",
                    loss=loss_value,
                    lr=state.lr,
                    samples_per_sec=samples / max(now - tick, 1e-9),
                    data_time=round(arrived - tick, 6),
                    step_time=round(now - arrived, 6),
                )
                tick = now
                if not math.isfinite(loss_value):
                    raise FloatingPointError(f"Trainer: the training loss became {loss_value} at step {state.step}")
                for callback in self.callbacks:
                    callback(self, step=state.step, epoch=state.epoch, loss=loss_value)
                if stop.requested:
                    self._save(self.latest_path, state.epoch, batch, state.step, state.best)
                    raise TrainingInterrupted(state.epoch, batch, state.step)
                if self.checkpoint_every and state.step % self.checkpoint_every == 0:
                    self._save(self.latest_path, state.epoch, batch, state.step, state.best)
                if self._done(state.step):
                    break
            state.start_batch = 0
            epoch_finished = not self._done(state.step) or batch == total
            if (
                self.scheduler is not None
                and self.scheduler_interval == "epoch"
                and epoch_finished
                and not isinstance(self.scheduler, ReduceLROnPlateau)
            ):  # that one steps in _validate
                self.scheduler.step()
            if epoch_finished:
                # The epoch's checkpoint comes first: a bad validation file or a crash while
                # validating loses no training (the resumed run validates, then goes on).
                state.epoch += 1
                validating = self.val_data is not None
                self._save(self.latest_path, state.epoch, 0, state.step, state.best, validated=not validating)
                if validating:  # once validated, the checkpoint says so (and holds the new best)
                    self._validate(state, writer, epoch_done=state.epoch)
                    self._save(self.latest_path, state.epoch, 0, state.step, state.best)
            else:
                # Stopped by max_steps mid-epoch. Validation may draw random numbers (a loader's
                # transforms): the run must resume with the streams as training left them.
                rng_at_stop = capture_rng_state()
                self._save(self.latest_path, state.epoch, batch, state.step, state.best, rng_state=rng_at_stop)
                best_before = state.best
                self._validate(state, writer, epoch_done=state.epoch, batch=batch)
                if state.best != best_before:  # the same on every rank: the metrics are gathered
                    self._save(self.latest_path, state.epoch, batch, state.step, state.best, rng_state=rng_at_stop)
            if self._any_rank(stop.requested):
                raise TrainingInterrupted(state.epoch, 0 if epoch_finished else batch, state.step)

    def _train_step(self, state: _Progress, writer: RunWriter, inputs, target) -> tuple[float, int]:
        inputs, target = _as_tensor(inputs, self.device), _as_tensor(target, self.device)
        loss = self.loss_fn(self.model(inputs), target)
        self.optimizer.zero_grad()
        loss.backward()
        if self.distributed is not None:
            self.distributed.allreduce_gradients(self.model.parameters())
        if self.is_main and self.grad_norm_every and state.step % self.grad_norm_every == 0:
            self._log_grad_norms(writer, state.step, state.epoch)
        state.lr = _current_lr(self.optimizer)
        self.optimizer.step()
        if self.scheduler is not None and self.scheduler_interval == "step":
            self.scheduler.step()
        state.step += 1
        return float(loss.item()), len(target)

    def _done(self, step: int) -> bool:
        return self.max_steps is not None and step >= self.max_steps


def _sample_order(data):
    """The dataset indices a loader visits, in its order, when its `sampler` tells them (a
    DistributedSampler, a SequentialSampler); else None. The sampler's epoch is left as found."""
    sampler = getattr(data, "sampler", None)
    if sampler is None or not hasattr(sampler, "__iter__"):
        return None
    epoch = getattr(sampler, "epoch", None)
    try:
        order = np.fromiter((int(i) for i in sampler), dtype=np.int64)
    except (TypeError, ValueError):  # indices that are not integers
        return None
    finally:
        if epoch is not None and hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
    return order


def _model_device(model):
    parameters = model.parameters() if hasattr(model, "parameters") else ()
    for p in parameters:
        return p.device
    return None


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped `Trainer.fit` at a step boundary; the latest checkpoint holds that step."""

    def __init__(self, epoch: int, batch: int, step: int):
        super().__init__(f"interrupted at epoch {epoch + 1}, batch {batch}, step {step}")
        self.epoch, self.batch, self.step = epoch, batch, step
        self.checkpoint: Path | None = None


class _Progress:
    """Where a run is: epoch, batch to start from, optimizer steps taken, best metric so far."""

    def __init__(self):
        self.epoch, self.start_batch, self.step, self.best = 0, 0, 0, None
        self.rng_state, self.last_val, self.lr = None, {}, float("nan")


class _StopRequest:
    """A Ctrl-C turned into a flag the loop reads at step boundaries (main thread only)."""

    def __init__(self):
        self.requested = False

    @contextlib.contextmanager
    def on_sigint(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)

        def request_stop(signum, frame):
            if self.requested:  # the second Ctrl-C does not wait
                raise KeyboardInterrupt
            self.requested = True

        signal.signal(signal.SIGINT, request_stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
