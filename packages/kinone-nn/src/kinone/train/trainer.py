"""`Trainer`: the training loop, with a run log, checkpoints and exact resume.

    trainer = Trainer(model, optimizer, loss_fn, train_loader, val_loader, run_dir="runs/exp1",
                      epochs=10, scheduler=scheduler, metrics={"mean_auroc": mean_auroc},
                      best_metric="mean_auroc", checkpoint_every=200)
    summary = trainer.fit(resume=True)   # continues from runs/exp1/checkpoints/latest.npz if present

Per step it logs loss, learning rate and samples per second (split "train"), and every
`grad_norm_every` steps the L2 norm of every parameter's gradient (split "grad_norm"); per
epoch the validation loss and metrics (split "val"). It writes `checkpoints/latest.npz` every
`checkpoint_every` steps and at each epoch's end, and `checkpoints/best.npz` when `best_metric`
improves.

Resuming restores model, optimizer, scheduler, progress and RNG states and positions the
training data at the next batch, so with a loader whose order is a function of (seed, epoch)
(kinone.data's DataLoader, num_workers=0) an interrupted run ends with the same weights as an
uninterrupted one.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from kinone.autograd import Tensor, no_grad

from .checkpoint import capture_rng_state, load_training_state, restore_rng_state, save_checkpoint
from .run_log import RunWriter


def _as_tensor(x):
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x))


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
    ):
        if scheduler_interval not in ("step", "epoch"):
            raise ValueError(f"Trainer: scheduler_interval must be 'step' or 'epoch', got {scheduler_interval!r}")
        if best_mode not in ("max", "min"):
            raise ValueError(f"Trainer: best_mode must be 'max' or 'min', got {best_mode!r}")
        if best_metric is not None and best_metric != "loss" and best_metric not in (metrics or {}):
            raise ValueError(f"Trainer: best_metric {best_metric!r} is neither 'loss' nor one of the metrics {sorted(metrics or {})}")
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.train_data, self.val_data = train_data, val_data
        self.run_dir = Path(run_dir)
        self.epochs, self.scheduler, self.scheduler_interval = epochs, scheduler, scheduler_interval
        self.metrics = dict(metrics or {})
        self.best_metric, self.best_mode = best_metric, best_mode
        self.max_steps, self.checkpoint_every, self.grad_norm_every = max_steps, checkpoint_every, grad_norm_every
        self.config, self.model_name = config or {}, model_name or type(model).__name__
        self.progress = progress or (lambda iterable, **kwargs: iterable)
        self.callbacks = list(callbacks)
        self.latest_path = self.run_dir / "checkpoints" / "latest.npz"
        self.best_path = self.run_dir / "checkpoints" / "best.npz"

    # ------------------------------------------------------------------ checkpoints
    def _save(self, path: Path, epoch: int, batch: int, step: int, best, rng_state=None) -> None:
        save_checkpoint(path, self.model, self.optimizer, self.scheduler, rng_state=rng_state,
                        epoch=epoch, batch=batch, step=step, best=best)

    def _is_better(self, value, best) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        return best is None or (value > best if self.best_mode == "max" else value < best)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, data) -> dict:
        """Mean loss and every metric over `data`, in eval mode and without a graph."""
        self.model.eval()
        total_loss, count, scores, targets = 0.0, 0, [], []
        with no_grad():
            for inputs, target in self.progress(data, desc="validate", leave=False):
                inputs, target = _as_tensor(inputs), _as_tensor(target)
                output = self.model(inputs)
                n = len(target)
                total_loss += float(self.loss_fn(output, target).item()) * n
                count += n
                scores.append(output.data)
                targets.append(target.data)
        if count == 0:
            return {}
        results = {"loss": total_loss / count}
        scores_all, targets_all = np.concatenate(scores), np.concatenate(targets)
        for name, metric in self.metrics.items():
            value = metric(targets_all, scores_all)
            results[name] = value.tolist() if isinstance(value, np.ndarray) else float(value)
        return results

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
        `resume=True` and a `latest.npz` in the run directory, continue that run."""
        resuming = resume and self.latest_path.exists()
        writer = RunWriter(self.run_dir, config=self.config, model_name=self.model_name,
                           num_parameters=self.model.num_parameters(), resume=resuming)
        epoch, start_batch, step, best = 0, 0, 0, None
        rng_state = None
        if resuming:
            # The RNG states are restored once the data is positioned (positioning may draw).
            progress, rng_state = load_training_state(self.latest_path, self.model, self.optimizer, self.scheduler)
            epoch, start_batch, step, best = progress["epoch"], progress["batch"], progress["step"], progress["best"]
            writer.log_event("resume", step=step, epoch=epoch, batch=start_batch)
        last_val: dict = {}
        try:
            while epoch < self.epochs and not self._done(step):
                self.model.train()
                batches = _batches(self.train_data, epoch, start_batch)
                if rng_state is not None:
                    restore_rng_state(rng_state)
                    rng_state = None
                total = len(self.train_data) if hasattr(self.train_data, "__len__") else None
                batch = start_batch
                tick = time.perf_counter()
                for inputs, target in self.progress(batches, total=total, initial=start_batch, desc=f"epoch {epoch + 1}"):
                    inputs, target = _as_tensor(inputs), _as_tensor(target)
                    loss = self.loss_fn(self.model(inputs), target)
                    self.optimizer.zero_grad()
                    loss.backward()
                    if self.grad_norm_every and step % self.grad_norm_every == 0:
                        self._log_grad_norms(writer, step, epoch)
                    lr = _current_lr(self.optimizer)
                    self.optimizer.step()
                    if self.scheduler is not None and self.scheduler_interval == "step":
                        self.scheduler.step()
                    step, batch = step + 1, batch + 1
                    now = time.perf_counter()
                    loss_value = float(loss.item())
                    writer.log(step, epoch, "train", loss=loss_value, lr=lr, samples_per_sec=len(target) / max(now - tick, 1e-9))
                    tick = now
                    if not math.isfinite(loss_value):
                        raise FloatingPointError(f"Trainer: the training loss became {loss_value} at step {step}")
                    for callback in self.callbacks:
                        callback(self, step=step, epoch=epoch, loss=loss_value)
                    if self.checkpoint_every and step % self.checkpoint_every == 0:
                        self._save(self.latest_path, epoch, batch, step, best)
                    if self._done(step):
                        break
                start_batch = 0
                epoch_finished = not self._done(step) or batch == total
                if self.scheduler is not None and self.scheduler_interval == "epoch" and epoch_finished:
                    self.scheduler.step()
                # Validation may draw random numbers (a loader's transforms): a run stopped here
                # must resume with the streams as training left them.
                rng_at_stop = capture_rng_state()
                if self.val_data is not None:
                    last_val = self.evaluate(self.val_data)
                    writer.log(step, epoch, "val", **last_val)
                    value = last_val.get(self.best_metric) if self.best_metric else None
                    if self._is_better(value, best):
                        best = value
                        self._save(self.best_path, epoch + 1 if epoch_finished else epoch, 0 if epoch_finished else batch, step, best)
                if epoch_finished:
                    epoch += 1
                    self._save(self.latest_path, epoch, 0, step, best)
                else:
                    self._save(self.latest_path, epoch, batch, step, best, rng_state=rng_at_stop)
        except KeyboardInterrupt:
            writer.close("interrupted", step=step)
            raise
        except BaseException as error:
            writer.close("failed", step=step, error=f"{type(error).__name__}: {error}")
            raise
        summary = {"epoch": epoch, "step": step, "best": best, "best_metric": self.best_metric, "val": last_val}
        writer.close("finished", step=step, best=best, best_metric=self.best_metric)
        return summary

    def _done(self, step: int) -> bool:
        return self.max_steps is not None and step >= self.max_steps
