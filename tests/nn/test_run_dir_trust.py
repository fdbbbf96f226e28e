"""The Trainer and the run log under faults: no run overwritten, no step duplicated, no work lost
to Ctrl-C or to a failing validation, and every resume bit-exact."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

from kinone import nn, optim
from kinone.autograd import Tensor, manual_seed
from kinone.nn import functional as F
from kinone.train import RunWriter, Trainer, TrainingInterrupted, read_metrics, read_run
from kinone.train.checkpoint import read_checkpoint_progress


class Batches:
    """Order a function of (seed, epoch); `fail_at_epoch`: raise OSError on that epoch's first batch
    (a bad file), `fail_once` makes it fail only the first time."""

    def __init__(self, x, y, batch_size=8, fail_at_epoch=None):
        self.x, self.y, self.batch_size, self.epoch, self.fail_at_epoch = x, y, batch_size, 0, fail_at_epoch
        self.calls = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.y) // self.batch_size

    def iter_from(self, start):
        order = np.random.default_rng((0, self.epoch)).permutation(len(self.y))
        for b in range(start, len(self)):
            if self.fail_at_epoch is not None and self.calls == self.fail_at_epoch:
                self.calls += 1
                raise OSError("cannot read image bad.png")
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            noise = np.random.normal(0, 0.05, self.x[idx].shape).astype(np.float32)
            yield Tensor(self.x[idx] + noise), Tensor(self.y[idx])
        self.calls += 1

    def __iter__(self):
        return self.iter_from(0)


def make_trainer(run_dir, val_fail=None, callbacks=(), epochs=3, checkpoint_every=None):
    manual_seed(0)
    np.random.seed(0)
    data = np.random.default_rng(1)
    x = data.normal(size=(48, 5)).astype(np.float32)
    y = (x[:, :2] > 0).astype(np.float32)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 2))
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=18)
    return Trainer(
        model,
        optimizer,
        F.binary_cross_entropy_with_logits,
        Batches(x, y),
        Batches(x[:16], y[:16], fail_at_epoch=val_fail),
        run_dir=run_dir,
        epochs=epochs,
        scheduler=scheduler,
        checkpoint_every=checkpoint_every,
        callbacks=callbacks,
    )


def weights(trainer):
    return [v.copy() for v in trainer.model.state_dict().values()]


def test_fit_refuses_a_run_directory_that_holds_a_run(tmp_path):
    make_trainer(tmp_path / "run").fit()
    before = (tmp_path / "run" / "run.json").read_bytes(), (tmp_path / "run" / "metrics.jsonl").read_bytes()
    with pytest.raises(FileExistsError, match="already holds a run"):
        make_trainer(tmp_path / "run").fit()
    assert ((tmp_path / "run" / "run.json").read_bytes(), (tmp_path / "run" / "metrics.jsonl").read_bytes()) == before


def test_a_failing_validation_keeps_the_epoch_and_the_resume_is_exact(tmp_path):
    reference = weights((t := make_trainer(tmp_path / "ref"), t.fit())[0])
    with pytest.raises(OSError, match="bad.png"):
        make_trainer(tmp_path / "run", val_fail=1).fit()  # the second epoch's validation fails
    progress = read_checkpoint_progress(tmp_path / "run" / "checkpoints" / "latest.npz")
    assert (progress["epoch"], progress["validated"]) == (2, False)
    assert read_run(tmp_path / "run")["status"] == "failed"
    resumed = make_trainer(tmp_path / "run")
    resumed.fit(resume=True)
    for a, b in zip(reference, weights(resumed)):
        np.testing.assert_array_equal(a, b)
    val = [r for r in read_metrics(tmp_path / "run") if r.get("split") == "val"]
    assert [r["epoch"] for r in val] == [0, 1, 2]


def test_ctrl_c_stops_at_a_step_with_its_checkpoint_and_resumes_exactly(tmp_path):
    reference = weights((t := make_trainer(tmp_path / "ref"), t.fit())[0])

    def interrupt(trainer, step, epoch, loss):
        if step == 4:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted) as stopped:
        make_trainer(tmp_path / "run", callbacks=[interrupt]).fit()
    assert (stopped.value.step, stopped.value.epoch, stopped.value.batch) == (4, 0, 4)
    assert read_checkpoint_progress(stopped.value.checkpoint)["step"] == 4
    info = read_run(tmp_path / "run")
    assert info["status"] == "interrupted" and info["step"] == 4
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    resumed = make_trainer(tmp_path / "run")
    resumed.fit(resume=True)
    assert resumed.resumed_from["step"] == 4
    for a, b in zip(reference, weights(resumed)):
        np.testing.assert_array_equal(a, b)
    steps = [r["step"] for r in read_metrics(tmp_path / "run") if r.get("split") == "train"]
    assert steps == list(range(1, 19))


def test_a_restart_before_the_first_checkpoint_writes_its_event(tmp_path):
    run = tmp_path / "run"

    def crash(trainer, step, epoch, loss):
        if step == 3:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        make_trainer(run, callbacks=[crash]).fit()
    assert not (run / "checkpoints" / "latest.npz").exists()
    make_trainer(run).fit(resume=True)
    steps = [r["step"] for r in read_metrics(run) if r.get("split") == "train"]
    assert steps == list(range(1, 19))  # no duplicates of steps 1-3


def test_a_half_written_last_line_is_ended_before_appending(tmp_path):
    run = tmp_path / "run"
    writer = RunWriter(run, config={})
    writer.log(1, 0, "train", loss=1.0)
    writer.close("running")
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "epoch": 0, "split": "tr')  # killed mid-line
    writer = RunWriter(run, resume=True)
    writer.log_event("resume", step=1)
    writer.log(2, 0, "train", loss=0.5)
    writer.close("finished")
    records = read_metrics(run)
    assert [r.get("event") for r in records] == [None, "resume", None]
    assert [r.get("step") for r in records] == [1, 1, 2]
    assert json.loads((run / "run.json").read_text())["status"] == "finished"


def test_stale_temporaries_of_killed_checkpoint_writes_are_removed_at_start(tmp_path):
    run = tmp_path / "run"
    make_trainer(run, epochs=1).fit()
    stale = [run / "checkpoints" / ".latest.npz.k3j9x0qa.tmp", run / ".run.json.a1b2c3d4.tmp"]
    for path in stale:
        path.write_bytes(b"\0" * 1024)
    keep = run / "checkpoints" / "notes.tmp"
    keep.write_text("not ours")
    trainer = make_trainer(run, epochs=2)
    trainer.fit(resume=True)
    assert not any(path.exists() for path in stale) and keep.exists()


def test_each_step_logs_its_data_wait_and_compute_time(tmp_path):
    make_trainer(tmp_path / "run", epochs=1).fit()
    train = [r for r in read_metrics(tmp_path / "run") if r.get("split") == "train"]
    assert all(r["data_time"] >= 0 and r["step_time"] > 0 for r in train)
