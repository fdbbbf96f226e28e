"""kinone.train: metrics, run log, checkpoints, and the Trainer's exact resume."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from kinone import nn, optim
from kinone.autograd import Tensor, manual_seed
from kinone.nn import functional as F
from kinone.train import (
    MetricsReader,
    RunWriter,
    Trainer,
    accuracy,
    load_checkpoint,
    mean_auroc,
    per_class_auroc,
    read_metrics,
    read_run,
    roc_auc,
    save_checkpoint,
)

# ---------------------------------------------------------------------- metrics


def test_roc_auc_counts_pairs_and_ties_half():
    labels = np.array([0, 0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.4])
    # Pairs (pos, neg): 9; pos>neg count; ties (0.4 vs 0.4) count 1/2.
    pos, neg = scores[labels == 1], scores[labels == 0]
    expected = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert roc_auc(labels, scores) == pytest.approx(expected)


def test_roc_auc_matches_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = rng.integers(0, 2, 200)
        scores = np.round(rng.random(200), 1)  # many ties
        assert roc_auc(labels, scores) == pytest.approx(sklearn_metrics.roc_auc_score(labels, scores), abs=1e-12)


def test_per_class_auroc_reports_nan_for_a_single_label_value():
    labels = np.array([[1, 0, 0], [0, 0, 1], [1, 0, 0], [0, 0, 1]])
    scores = np.array([[0.9, 0.1, 0.2], [0.1, 0.3, 0.8], [0.8, 0.2, 0.1], [0.2, 0.5, 0.7]])
    values = per_class_auroc(labels, scores)
    assert values[0] == 1.0 and math.isnan(values[1]) and values[2] == 1.0
    assert mean_auroc(labels, scores) == 1.0


def test_accuracy():
    assert accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1])) == 0.5
    assert accuracy(np.array([[2.0, -1.0]]), np.array([[1.0, 0.0]])) == 1.0


# ---------------------------------------------------------------------- run log


def test_run_log_round_trip_and_reader_tolerance(tmp_path):
    writer = RunWriter(tmp_path / "run", config={"lr": 0.1}, model_name="mlp", num_parameters=10)
    writer.log(1, 0, "train", loss=0.5, lr=0.1)
    writer.log(1, 0, "val", auroc=float("nan"))
    info = read_run(tmp_path / "run")
    assert info["status"] == "running" and info["model"] == "mlp" and info["config"] == {"lr": 0.1}
    path = tmp_path / "run" / "metrics.jsonl"
    reader = MetricsReader(path)
    assert [r["split"] for r in reader.read()] == ["train", "val"]
    with open(path, "a") as f:
        f.write('{"step": 2, "epoch": 0, "split": "train", "lo')  # half-written
    assert reader.read() == []
    with open(path, "a") as f:
        f.write('ss": 0.4}\nnot json\n')
    assert [r["loss"] for r in reader.read()] == [0.4] and reader.corrupt_lines == 1
    writer.close("finished")
    assert read_run(tmp_path / "run")["status"] == "finished"
    records = read_metrics(tmp_path / "run")
    assert records[1]["auroc"] is None  # NaN is written as null


def test_reader_drops_records_superseded_by_a_resume(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [{"step": s, "epoch": 0, "split": "train", "loss": s} for s in (1, 2, 3, 4)]
    lines.append({"event": "resume", "step": 2})
    lines += [{"step": s, "epoch": 0, "split": "train", "loss": 10 + s} for s in (3, 4)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    losses = [r["loss"] for r in read_metrics(path) if "loss" in r]
    assert losses == [1, 2, 13, 14]


# ---------------------------------------------------------------------- checkpoints


def _mlp():
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))


def test_checkpoint_round_trip_restores_everything(tmp_path):
    manual_seed(0)
    model = _mlp()
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    scheduler = optim.lr_scheduler.StepLR(optimizer, 2, 0.5)
    x, y = Tensor(np.random.rand(8, 6).astype(np.float32)), Tensor(np.arange(8) % 3)
    for _ in range(3):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        scheduler.step()
    save_checkpoint(tmp_path / "c.npz", model, optimizer, scheduler, epoch=1, step=3)

    manual_seed(99)
    other = _mlp()
    other_opt = optim.Adam(other.parameters(), lr=0.01)
    other_sched = optim.lr_scheduler.StepLR(other_opt, 2, 0.5)
    progress = load_checkpoint(tmp_path / "c.npz", other, other_opt, other_sched)
    assert progress == {"epoch": 1, "step": 3}
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        np.testing.assert_array_equal(a, b)
    assert other_sched.get_last_lr() == scheduler.get_last_lr()
    assert other_opt.state_dict()["state"][0]["step"] == 3


def test_checkpoint_restores_the_rng_streams(tmp_path):
    model = _mlp()
    save_checkpoint(tmp_path / "c.npz", model)
    after = (np.random.rand(), random.random())
    np.random.rand(5)
    load_checkpoint(tmp_path / "c.npz", model)
    assert (np.random.rand(), random.random()) == after


def test_load_checkpoint_rejects_a_plain_state_dict(tmp_path):
    nn.save({"a": np.zeros(2)}, tmp_path / "sd.npz")
    with pytest.raises(ValueError, match="is not a Kinone checkpoint"):
        load_checkpoint(tmp_path / "sd.npz", _mlp())


# ---------------------------------------------------------------------- the trainer

TRAINING_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from kinone import nn, optim
    from kinone.autograd import Tensor, manual_seed
    from kinone.nn import functional as F
    from kinone.train import Trainer, mean_auroc

    class EpochLoader:
        '''Order is a function of (seed, epoch); inputs get augmentation noise from NumPy's global RNG.'''

        def __init__(self, x, y, batch_size, seed):
            self.x, self.y, self.batch_size, self.seed, self.epoch = x, y, batch_size, seed, 0

        def set_epoch(self, epoch):
            self.epoch = epoch

        def __len__(self):
            return len(self.y) // self.batch_size

        def iter_from(self, start):
            order = np.random.default_rng((self.seed, self.epoch)).permutation(len(self.y))
            for b in range(start, len(self)):
                idx = order[b * self.batch_size:(b + 1) * self.batch_size]
                noise = np.random.normal(0, 0.05, self.x[idx].shape).astype(np.float32)
                yield Tensor(self.x[idx] + noise), Tensor(self.y[idx])

        def __iter__(self):
            return self.iter_from(0)

    def build(seed=0):
        manual_seed(seed)
        np.random.seed(seed)
        data = np.random.default_rng(123)
        x = data.normal(size=(96, 6)).astype(np.float32)
        y = (x[:, :3] > 0).astype(np.float32)
        model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
        optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=24)
        return model, optimizer, scheduler, EpochLoader(x, y, 16, seed), EpochLoader(x[:32], y[:32], 16, seed)

    def train(run_dir, resume=False, max_steps=None, slow=0.0):
        import time
        model, optimizer, scheduler, train_data, val_data = build()
        callbacks = [lambda trainer, **kw: time.sleep(slow)] if slow else []
        trainer = Trainer(model, optimizer, F.binary_cross_entropy_with_logits, train_data, val_data,
                          run_dir=run_dir, epochs=4, scheduler=scheduler, metrics={"mean_auroc": mean_auroc},
                          best_metric="mean_auroc", checkpoint_every=2, grad_norm_every=5, max_steps=max_steps,
                          callbacks=callbacks)
        trainer.fit(resume=resume)
        return model

    if __name__ == "__main__":
        train(sys.argv[1], resume="--resume" in sys.argv, slow=0.05)
    """
)


@pytest.fixture
def training_module(tmp_path):
    path = tmp_path / "train_script.py"
    path.write_text(TRAINING_SCRIPT)
    namespace: dict = {"__name__": "train_script"}
    exec(compile(TRAINING_SCRIPT, str(path), "exec"), namespace)
    return path, namespace


def _weights(model):
    return [v.copy() for v in model.state_dict().values()]


def test_trainer_logs_checkpoints_and_finishes(tmp_path, training_module):
    _, ns = training_module
    ns["train"](tmp_path / "run")
    records = read_metrics(tmp_path / "run")
    train = [r for r in records if r.get("split") == "train"]
    assert len(train) == 24 and {"loss", "lr", "samples_per_sec"} <= set(train[0])
    assert len([r for r in records if r.get("split") == "val"]) == 4
    grad = [r for r in records if r.get("split") == "grad_norm"]
    assert len(grad) == 5 and "0.weight" in grad[0]
    val_auroc = [r["mean_auroc"] for r in records if r.get("split") == "val"]
    assert val_auroc[-1] > 0.8  # it learns
    info = read_run(tmp_path / "run")
    assert info["status"] == "finished" and info["num_parameters"] == 6 * 16 + 16 + 16 * 3 + 3
    assert (tmp_path / "run" / "checkpoints" / "latest.npz").exists()
    assert (tmp_path / "run" / "checkpoints" / "best.npz").exists()


def test_stopping_and_resuming_mid_epoch_gives_the_same_weights(tmp_path, training_module):
    _, ns = training_module
    reference = _weights(ns["train"](tmp_path / "straight"))
    ns["train"](tmp_path / "split", max_steps=9)  # stops mid-epoch 2 (6 batches per epoch)
    resumed = _weights(ns["train"](tmp_path / "split", resume=True))
    for a, b in zip(reference, resumed):
        np.testing.assert_array_equal(a, b)


def test_a_run_killed_with_sigkill_resumes_to_the_same_weights(tmp_path, training_module):
    script, ns = training_module
    reference = _weights(ns["train"](tmp_path / "straight"))
    run_dir = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    process = subprocess.Popen([sys.executable, str(script), str(run_dir)], env=env)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:  # wait until a few steps (and checkpoints) are done
            records = read_metrics(run_dir) if (run_dir / "metrics.jsonl").exists() else []
            if sum(r.get("split") == "train" for r in records) >= 7:
                break
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert read_run(run_dir)["status"] == "running"  # the writer never got to say otherwise
    resumed = _weights(ns["train"](run_dir, resume=True))
    for a, b in zip(reference, resumed):
        np.testing.assert_array_equal(a, b)
    records = read_metrics(run_dir)
    steps = [r["step"] for r in records if r.get("split") == "train"]
    assert steps == list(range(1, 25))  # redone steps replace the killed run's extra records
    assert read_run(run_dir)["status"] == "finished"


def test_trainer_rejects_an_unknown_best_metric(tmp_path):
    model = _mlp()
    with pytest.raises(ValueError, match="best_metric 'auc' is neither 'loss' nor one of the metrics"):
        Trainer(model, optim.SGD(model.parameters(), lr=0.1), F.cross_entropy, [], run_dir=tmp_path, best_metric="auc")


def _plateau_run(run_dir, resume=False, max_steps=None):
    from kinone.optim.lr_scheduler import ReduceLROnPlateau

    manual_seed(0)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x[:, :1] > 0).astype(np.float32)
    model = nn.Linear(4, 1)
    optimizer = optim.SGD(model.parameters(), lr=0.5)
    scheduler = ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=0, threshold=10.0)  # never "better"
    batches = [(Tensor(x[i : i + 16]), Tensor(y[i : i + 16])) for i in range(0, 64, 16)]
    trainer = Trainer(
        model,
        optimizer,
        F.binary_cross_entropy_with_logits,
        batches,
        batches[:2],
        run_dir=run_dir,
        epochs=3,
        scheduler=scheduler,
        scheduler_interval="epoch",
        plateau_metric="mean_auroc",
        metrics={"mean_auroc": mean_auroc},
        max_steps=max_steps,
    )
    trainer.fit(resume=resume)
    return model, optimizer, scheduler


def test_reduce_lr_on_plateau_steps_once_per_epoch_on_the_validation_metric(tmp_path):
    model, optimizer, scheduler = _plateau_run(tmp_path / "run")
    # mode max with a huge threshold: no epoch counts as better; patience 0 halves the lr at every
    # epoch but the first (the first value becomes the best).
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * 0.5**2)
    lrs = [r["lr"] for r in read_metrics(tmp_path / "run") if r.get("split") == "train"]
    assert lrs == [0.5] * 8 + [0.25] * 4


def test_reduce_lr_on_plateau_resumes_to_the_same_weights(tmp_path):
    reference, _, _ = _plateau_run(tmp_path / "straight")
    _plateau_run(tmp_path / "split", max_steps=4)  # stops at the end of epoch 1, before validating it
    resumed, optimizer, _ = _plateau_run(tmp_path / "split", resume=True)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.125)
    for a, b in zip(_weights(reference), _weights(resumed)):
        np.testing.assert_array_equal(a, b)


def test_reduce_lr_on_plateau_needs_validation(tmp_path):
    from kinone.optim.lr_scheduler import ReduceLROnPlateau

    model = nn.Linear(2, 1)
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="ReduceLROnPlateau steps once per epoch on a validation figure"):
        Trainer(
            model,
            optimizer,
            F.mse_loss,
            [],
            None,
            run_dir=tmp_path,
            scheduler=ReduceLROnPlateau(optimizer),
            scheduler_interval="epoch",
        )
    with pytest.raises(ValueError, match="plateau_metric 'auc' is neither 'loss' nor one of the metrics"):
        Trainer(
            model,
            optimizer,
            F.mse_loss,
            [],
            [],
            run_dir=tmp_path,
            scheduler=ReduceLROnPlateau(optimizer),
            scheduler_interval="epoch",
            plateau_metric="auc",
        )
