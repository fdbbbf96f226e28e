"""Generated run directories, in the format `kinone.train.run_log.RunWriter` writes, for the
dashboard's tests: every status, an empty run, a run without validation, a corrupt log.
(Imported by conftest.py and the test modules; a unique name, as tests run with
--import-mode=importlib and this folder on sys.path.)"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

FINDINGS = [
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
]
LAYERS = ["conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight", "fc.weight", "fc.bias"]


def dead_pid() -> int:
    """The pid of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def write_run_json(
    run_dir: Path,
    status: str = "finished",
    pid: int | None = None,
    host: str | None = None,
    findings: list[str] | None = FINDINGS,
    **extra,
) -> None:
    config = {"model": "resnet18", "lr": 0.002, "epochs": 3}
    if findings is not None:
        config["findings"] = findings
    info = {
        "name": run_dir.name,
        "model": "resnet18",
        "num_parameters": 11_177_422,
        "config": config,
        "versions": {"python": platform.python_version()},
        "start_time": "2026-11-30T07:31:50+00:00",
        "host": platform.node() if host is None else host,
        "pid": os.getpid() if pid is None else pid,
        "status": status,
        "updated_at": "2026-11-30T07:32:49+00:00",
        **extra,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(json.dumps(info, indent=2))


def train_line(step: int, epoch: int = 0, loss: float | None = None) -> str:
    loss = 1.0 / (1 + 0.05 * step) if loss is None else loss
    return (
        json.dumps(
            {
                "step": step,
                "epoch": epoch,
                "split": "train",
                "time": 1.7e9 + step,
                "loss": loss,
                "lr": 1e-3 * min(1.0, step / 10),
                "samples_per_sec": 40.0 + step % 7,
            }
        )
        + "\n"
    )


def val_line(step: int, epoch: int, mean: float, split: str = "val") -> str:
    rng = np.random.default_rng(step)
    auroc = list(np.clip(mean + 0.05 * rng.standard_normal(len(FINDINGS)), 0, 1))
    auroc[2] = float("nan")  # a finding without positives: JSON gets NaN, as RunWriter writes it
    return (
        json.dumps(
            {
                "step": step,
                "epoch": epoch,
                "split": split,
                "time": 1.7e9 + step,
                "loss": 1.5 - mean,
                "mean_auroc": mean,
                "auroc": auroc,
            }
        )
        + "\n"
    )


def grad_line(step: int, epoch: int, scale: float = 1.0) -> str:
    norms = {name: scale * (i + 1) * 0.1 for i, name in enumerate(LAYERS)}
    return json.dumps({"step": step, "epoch": epoch, "split": "grad_norm", "time": 1.7e9 + step, **norms}) + "\n"


def write_metrics(
    run_dir: Path, steps: int = 60, epochs: int = 3, validation: bool = True, test: bool = False, grad_every: int = 10
) -> None:
    """A log shaped like a `kinone-train` run: train lines every step, grad norms every
    `grad_every` steps, a validation record at each epoch's end."""
    per_epoch = max(1, steps // epochs)
    lines = []
    for step in range(1, steps + 1):
        epoch = min(epochs - 1, (step - 1) // per_epoch)
        if grad_every and (step - 1) % grad_every == 0:
            lines.append(grad_line(step - 1, epoch))
        lines.append(train_line(step, epoch))
        if validation and step % per_epoch == 0:
            lines.append(val_line(step, epoch, 0.6 + 0.1 * (step // per_epoch)))
    if test:
        lines.append(val_line(steps, epochs, 0.9, split="test"))
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.writelines(lines)


def make_runs(root: Path) -> Path:
    """One run of each kind the dashboard must show, under `root`."""
    finished = root / "finished"
    write_run_json(
        finished, "finished", pid=dead_pid(), step=60, best=0.9, best_metric="mean_auroc", test_mean_auroc=0.9
    )
    write_metrics(finished, test=True)
    (finished / "checkpoints").mkdir()
    np.savez(finished / "checkpoints" / "latest.npz", w=np.zeros(3, np.float32))
    np.savez(finished / "checkpoints" / "best.npz", w=np.ones(3, np.float32))
    (finished / "model.onnx").write_bytes(b"onnx bytes")

    live = root / "live"
    write_run_json(live, "running")  # this test process is its "writer": alive
    write_metrics(live, steps=40, epochs=2)

    crashed = root / "crashed"
    write_run_json(crashed, "running", pid=dead_pid())
    write_metrics(crashed, steps=30)

    failed = root / "failed"
    write_run_json(
        failed, "failed", pid=dead_pid(), error="FloatingPointError: the training loss became nan at step 12"
    )
    write_metrics(failed, steps=12, validation=False)

    empty = root / "empty"
    write_run_json(empty, "running")

    noval = root / "noval"
    write_run_json(noval, "finished", pid=dead_pid(), findings=None)
    write_metrics(noval, steps=25, validation=False)

    corrupt = root / "corrupt"
    write_run_json(corrupt, "running")
    write_metrics(corrupt, steps=20, epochs=1)
    with open(corrupt / "metrics.jsonl", "a") as f:
        f.write('{"step": 21, "epoch": 0, "split": "tr\x00\x00 garbage\n')
        f.write(train_line(22))
        f.write('{"step": 23, "epoch": 0, "split": "train", "lo')  # the trainer is mid-write
    return root


def snapshot(root: Path) -> dict:
    """Every path under `root` with its size and modification time."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.stat()
        out[str(path.relative_to(root))] = (path.is_dir(), st.st_size if path.is_file() else 0, st.st_mtime_ns)
    return out
