"""Trainer(distributed=...): the data-parallel hooks, checked in one process with a fake
`distributed` object (kinone.train never imports kinone.distributed; any object with its
functions will do). The multi-process runs are in tests/data/test_train_mpi.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kinone import nn, optim
from kinone.autograd import Tensor, manual_seed
from kinone.nn import functional as F
from kinone.train import Trainer, TrainingInterrupted, mean_auroc, read_metrics, read_run


class FakeDistributed:
    """kinone.distributed's functions with world-size-1 semantics, recording every call.

    `copies`: all_gather returns that many copies of its input, as if other ranks had sent
    the same rows (a padded sampler's duplicates). `other_rank_stops`: the other ranks' step
    figures say Ctrl-C was pressed there."""

    def __init__(self, main=True, copies=1, other_rank_stops=False):
        self.main, self.copies, self.other_rank_stops = main, copies, other_rank_stops
        self.calls: list[str] = []
        self.checked: list[tuple] = []

    def is_main(self):
        return self.main

    def world_size(self):
        return self.copies

    def allreduce_gradients(self, parameters):
        self.calls.append("allreduce_gradients")
        assert all(p.grad is not None for p in parameters)  # after backward

    def all_gather(self, array):
        array = np.asarray(array)
        self.calls.append("all_gather")
        others = [array.copy() for _ in range(self.copies - 1)]
        if self.other_rank_stops and array.shape == (3,) and array.dtype == np.float64:
            others = [np.array([array[0], array[1], 1.0]) for _ in range(max(1, self.copies - 1))]
        return np.concatenate([array, *others])

    def average_buffers(self, module):
        self.calls.append("average_buffers")

    def broadcast_parameters(self, module, root=0):
        self.calls.append("broadcast_parameters")

    def broadcast_state(self, state, root=0):
        self.calls.append("broadcast_state")
        return state

    def check_same_everywhere(self, name, value):
        self.checked.append((name, value))


class Loader:
    """Batches of (x, y) over a fixed order of indices, exposed as `sampler`."""

    def __init__(self, x, y, batch_size, order=None):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.sampler = list(range(len(x))) if order is None else list(order)

    def __len__(self):
        return -(-len(self.sampler) // self.batch_size)

    def __iter__(self):
        for start in range(0, len(self.sampler), self.batch_size):
            chosen = self.sampler[start : start + self.batch_size]
            yield Tensor(self.x[chosen]), Tensor(self.y[chosen])


def make_trainer(run_dir, distributed=None, epochs=2, checkpoint_every=None, max_steps=None):
    manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 5)).astype(np.float32)
    y = (x[:, :3] + 0.3 * rng.standard_normal((24, 3)) > 0).astype(np.float32)
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    trainer = Trainer(
        model,
        optimizer,
        F.binary_cross_entropy_with_logits,
        Loader(x, y, 6),
        Loader(x[:11], y[:11], 4),
        run_dir=run_dir,
        epochs=epochs,
        metrics={"mean_auroc": mean_auroc},
        best_metric="mean_auroc",
        checkpoint_every=checkpoint_every,
        max_steps=max_steps,
        grad_norm_every=1,
        distributed=distributed,
    )
    return trainer


def weights(trainer):
    return {k: v.copy() for k, v in trainer.model.state_dict().items()}


def test_world_size_1_gives_the_run_of_no_distributed_object(tmp_path):
    plain = make_trainer(tmp_path / "plain")
    plain.fit()
    fake = FakeDistributed()
    hooked = make_trainer(tmp_path / "hooked", fake)
    hooked.fit()
    for key, value in weights(plain).items():
        np.testing.assert_array_equal(weights(hooked)[key], value, err_msg=key)
    train = lambda run: [(r["step"], r["loss"]) for r in read_metrics(run) if r.get("split") == "train"]
    assert train(tmp_path / "hooked") == train(tmp_path / "plain")
    val = lambda run: [r for r in read_metrics(run) if r.get("split") == "val"]
    for a, b in zip(val(tmp_path / "hooked"), val(tmp_path / "plain")):
        assert a["mean_auroc"] == b["mean_auroc"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)  # one mean over the split, not per batch
    assert read_run(tmp_path / "hooked")["config"]["world_size"] == 1


def test_gradients_are_averaged_after_backward_and_before_every_step(tmp_path):
    fake = FakeDistributed()
    trainer = make_trainer(tmp_path / "run", fake, epochs=1)
    step = trainer.optimizer.step

    def recorded_step():
        fake.calls.append("optimizer.step")
        step()

    trainer.optimizer.step = recorded_step
    trainer.fit()
    order = [c for c in fake.calls if c in ("allreduce_gradients", "optimizer.step")]
    assert order == ["allreduce_gradients", "optimizer.step"] * 4


def test_buffers_are_averaged_before_each_validation_and_each_checkpoint(tmp_path, monkeypatch):
    from kinone.train import trainer as trainer_module

    fake = FakeDistributed()
    trainer = make_trainer(tmp_path / "run", fake, epochs=2, checkpoint_every=3)
    saves, evaluations = [], []
    save = trainer_module.save_checkpoint

    def recorded_save(*args, **kwargs):
        saves.append(fake.calls[-1])
        save(*args, **kwargs)

    evaluate = trainer.evaluate

    def recorded_evaluate(data):
        before = len(fake.calls)
        result = evaluate(data)
        evaluations.append(fake.calls[before:])
        return result

    monkeypatch.setattr(trainer_module, "save_checkpoint", recorded_save)
    trainer.evaluate = recorded_evaluate
    trainer.fit()
    assert len(saves) >= 5 and set(saves) == {"average_buffers"}  # the call right before each write
    assert len(evaluations) == 2 and all(calls[0] == "average_buffers" for calls in evaluations)


def test_only_the_main_rank_writes_the_run_directory(tmp_path):
    other = make_trainer(tmp_path / "rank1", FakeDistributed(main=False), checkpoint_every=2)
    summary = other.fit()
    assert summary["step"] == 8
    assert not (tmp_path / "rank1" / "run.json").exists()
    assert not (tmp_path / "rank1" / "metrics.jsonl").exists()
    assert not list((tmp_path / "rank1").rglob("*.npz"))


def test_validation_drops_the_rows_other_ranks_repeat(tmp_path):
    """Each row arrives twice (a padded sampler's duplicates): the metrics are those of one copy."""
    single = make_trainer(tmp_path / "single")
    doubled = make_trainer(tmp_path / "doubled", FakeDistributed(copies=2))
    expected, got = single.evaluate(single.val_data), doubled.evaluate(doubled.val_data)
    assert got["mean_auroc"] == expected["mean_auroc"]
    assert got["loss"] == pytest.approx(expected["loss"], rel=1e-6)


def test_validation_counts_each_sample_once_even_out_of_order(tmp_path):
    """The sampler's order tells the samples apart: a padded order (first rows repeated at the
    end) gives the metrics of the split itself, rows in dataset order."""
    trainer = make_trainer(tmp_path / "run", FakeDistributed())
    reference = trainer.evaluate(trainer.val_data)
    padded = Loader(trainer.val_data.x, trainer.val_data.y, 4, order=[5, 3, 7, 0, 1, 2, 4, 6, 8, 9, 10, 5, 3])
    result = trainer.evaluate(padded)
    assert result["mean_auroc"] == reference["mean_auroc"]
    assert result["loss"] == pytest.approx(reference["loss"], rel=1e-6)


def test_the_logged_loss_is_the_global_batch_mean(tmp_path):
    trainer = make_trainer(tmp_path / "run", FakeDistributed(copies=3), epochs=1)
    trainer.fit()
    records = [r for r in read_metrics(tmp_path / "run") if r.get("split") == "train"]
    plain = make_trainer(tmp_path / "plain", epochs=1)
    plain.fit()
    expected = [r for r in read_metrics(tmp_path / "plain") if r.get("split") == "train"]
    assert [r["loss"] for r in records] == pytest.approx([r["loss"] for r in expected], rel=1e-12)
    assert [r["step"] for r in records] == [1, 2, 3, 4]


def test_a_stop_requested_on_another_rank_stops_this_one_at_the_same_step(tmp_path):
    trainer = make_trainer(tmp_path / "run", FakeDistributed(other_rank_stops=True))
    with pytest.raises(TrainingInterrupted) as stopped:
        trainer.fit()
    assert stopped.value.step == 1
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "interrupted"


def test_resume_checks_the_checkpoint_and_broadcasts_rank_0s_state(tmp_path):
    whole = make_trainer(tmp_path / "whole")
    whole.fit()
    first = make_trainer(tmp_path / "run", FakeDistributed(), max_steps=3)
    first.fit()
    fake = FakeDistributed()
    second = make_trainer(tmp_path / "run", fake)
    second.fit(resume=True)
    assert fake.checked[0][1] == {"epoch": 0, "batch": 3, "step": 3}
    assert {"broadcast_parameters", "broadcast_state"} <= set(fake.calls)
    for key, value in weights(whole).items():
        np.testing.assert_array_equal(weights(second)[key], value, err_msg=key)
