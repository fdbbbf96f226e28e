"""The run directory: what a training run writes, and a reader for it.

    runs/<name>/run.json         config, model name, parameter count, versions, start time, status
    runs/<name>/metrics.jsonl    one JSON object per event: {"step", "epoch", "split", "time", ...values}
    runs/<name>/checkpoints/     latest.npz, best.npz

`metrics.jsonl` is append-only and flushed line by line, so a reader (the dashboard) can follow
it while training writes. A resumed run appends a `{"event": "resume", "step": k}` line; the
reader then drops the earlier records of steps after k, which the resumed run redoes.
`run.json` is rewritten atomically when the status changes. A run whose writer died without
setting a final status stays "running"; readers tell it from a live one by its heartbeat
(`updated_at` in run.json and the file times).
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

from kinone.nn.serialization import atomic_write, remove_stale_temporaries

STATUSES = ("running", "finished", "failed", "interrupted")


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _json_value(value):
    """Python/NumPy scalars to JSON: NaN and infinities become None (JSON has no NaN)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def package_versions() -> dict:
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in ("numpy", "kinone-autograd", "kinone-nn", "kinone-data", "kinone-onnx", "kinone-distributed", "mpi4py"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


class RunWriter:
    """Writes one run directory. Create it with the run's config; log events; set the status."""

    def __init__(
        self,
        run_dir,
        config: dict | None = None,
        model_name: str | None = None,
        num_parameters: int | None = None,
        resume: bool = False,
        reopen: bool = False,
    ):
        """`resume`: continue a run (its run.json is kept, the resume is recorded, status back to
        running). `reopen`: append to a run's log after training (e.g. test results) without
        changing its status until `close`."""
        self.dir = Path(run_dir)
        self.checkpoint_dir = self.dir / "checkpoints"
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self.run_json = self.dir / "run.json"
        self.metrics_path = self.dir / "metrics.jsonl"
        if (resume or reopen) and self.run_json.exists():
            self.info = json.loads(self.run_json.read_text())
            if resume:
                self.info.setdefault("resumed_at", []).append(_now_iso())
        else:
            self.info = {
                "name": self.dir.name,
                "model": model_name,
                "num_parameters": num_parameters,
                "config": config or {},
                "versions": package_versions(),
                "start_time": _now_iso(),
                "host": platform.node(),
                "pid": os.getpid(),
            }
        self.removed_temporaries: list[Path] = []
        if not reopen:
            # Nothing else writes here now: what killed checkpoint writes left behind goes.
            for folder in (self.dir, self.checkpoint_dir):
                self.removed_temporaries += remove_stale_temporaries(folder)
            self.info["pid"] = os.getpid()
            self.set_status("running")
        _end_half_written_line(self.metrics_path)
        self._metrics = open(self.metrics_path, "a", encoding="utf-8")

    def set_status(self, status: str, **extra) -> None:
        if status not in STATUSES:
            raise ValueError(f"run status must be one of {STATUSES}, got {status!r}")
        self.info.update(status=status, updated_at=_now_iso(), **extra)
        text = json.dumps(self.info, indent=2, default=_json_value)
        atomic_write(self.run_json, lambda f: f.write(text.encode("utf-8")))

    def log(self, step: int, epoch: int, split: str, **values) -> None:
        """Append one event; values are numbers (NaN is written as null) or small JSON values."""
        record = {"step": int(step), "epoch": int(epoch), "split": split, "time": round(time.time(), 3)}
        record.update({k: _json_value(v) for k, v in values.items()})
        self._metrics.write(json.dumps(record) + "\n")
        self._metrics.flush()

    def log_event(self, event: str, **values) -> None:
        record = {"event": event, "time": round(time.time(), 3)}
        record.update({k: _json_value(v) for k, v in values.items()})
        self._metrics.write(json.dumps(record) + "\n")
        self._metrics.flush()

    def close(self, status: str | None = None, **extra) -> None:
        if status is not None:
            self.set_status(status, **extra)
        if not self._metrics.closed:
            self._metrics.close()


class NullRunWriter:
    """The `RunWriter` of a data-parallel run's other ranks: the same methods, writing nothing.

    Rank 0 alone writes run.json, metrics.jsonl and the checkpoints (kinone-distributed's README); the
    other ranks run the same loop, logging into this."""

    def __init__(self, run_dir, *args, **kwargs):
        self.dir = Path(run_dir)
        self.checkpoint_dir = self.dir / "checkpoints"
        self.run_json = self.dir / "run.json"
        self.metrics_path = self.dir / "metrics.jsonl"
        self.info: dict = {}
        self.removed_temporaries: list[Path] = []

    def set_status(self, status: str, **extra) -> None:
        if status not in STATUSES:
            raise ValueError(f"run status must be one of {STATUSES}, got {status!r}")

    def log(self, step: int, epoch: int, split: str, **values) -> None:
        pass

    def log_event(self, event: str, **values) -> None:
        pass

    def close(self, status: str | None = None, **extra) -> None:
        if status is not None:
            self.set_status(status)


def _end_half_written_line(path: Path) -> None:
    """A writer killed mid-line leaves a last line without its newline: end it, so the next
    record starts on a line of its own (the reader counts the broken line as corrupt)."""
    try:
        with open(path, "rb+") as f:
            if f.seek(0, os.SEEK_END) and (f.seek(-1, os.SEEK_END), f.read(1))[1] != b"\n":
                f.write(b"\n")
    except FileNotFoundError:
        pass


class MetricsReader:
    """Reads `metrics.jsonl` incrementally: each `read()` returns the records appended since the
    last call. A half-written last line is left for the next call; a corrupt complete line is
    skipped and counted in `corrupt_lines`."""

    def __init__(self, path):
        self.path = Path(path)
        self.offset = 0
        self.corrupt_lines = 0

    def read(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n") + 1  # only complete lines
        records = []
        for line in chunk[:end].splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                self.corrupt_lines += 1
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                self.corrupt_lines += 1
        self.offset += end
        return records


def read_metrics(path) -> list[dict]:
    """All records of a `metrics.jsonl` (or of the run directory holding it), with the records
    superseded by a resume removed; tolerates a half-written last line and corrupt lines."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    return apply_resumes(MetricsReader(path).read())


def apply_resumes(records: list[dict]) -> list[dict]:
    """Drop the records that a later `resume` event at step k supersedes (their step > k)."""
    out: list[dict] = []
    for record in records:
        if record.get("event") == "resume":
            k = record.get("step", 0)
            out = [r for r in out if "step" not in r or r["step"] <= k]
        out.append(record)
    return out


def read_run(run_dir) -> dict:
    """`run.json` of a run directory as a dict (FileNotFoundError naming the file if absent)."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise FileNotFoundError(f"read_run: no run.json in {run_dir}")
    return json.loads(path.read_text())
