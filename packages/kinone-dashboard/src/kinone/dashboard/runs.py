"""Reading run directories for the dashboard, without Streamlit: finding runs, telling their
status (a "crashed" run is one whose writer stopped without finishing), following
`metrics.jsonl` incrementally into columns, and downsampling series for plotting.

Nothing here writes: every file is opened read-only, so the dashboard can watch a run while
`kinone.train` writes it, and cannot damage it.

Speed (measured on the project's 2-core machine, see the package README): a 1,000,000-line
`metrics.jsonl` is read in about two seconds. Lines are parsed in batches of a few thousand with
one `json.loads` per batch (a JSON array built from the lines), about three times faster than
one `json.loads` per line; a batch holding a corrupt line is parsed again line by line, so a
corrupt line costs only itself. Records are kept as columns (one list per field and split),
not as a million dicts, and turned into pandas frames only when the log has grown.
"""

from __future__ import annotations

import json
import math
import os
import platform
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from kinone.train.run_log import MetricsReader

# A "running" run that has written nothing (run.json, metrics.jsonl) for this long, and whose
# process cannot be checked (another host), is reported as crashed. Training writes a line per
# step; only a very long validation pass stays silent longer.
STALE_AFTER_S = 600.0
# Points per plotted series (min/max per bucket keeps spikes visible).
MAX_POINTS = 2000
# Parsing: bytes read per block and lines per `json.loads` batch.
READ_BLOCK = 16 * 1024 * 1024
PARSE_BATCH = 5000

FINAL_STATUSES = ("finished", "failed", "interrupted")


# ---------------------------------------------------------------------------------- run status
def pid_alive(pid) -> bool | None:
    """Whether process `pid` exists on this machine; None when that cannot be told."""
    if os.name == "nt" or not isinstance(pid, int) or pid <= 0:
        return None  # on Windows os.kill(pid, 0) would terminate the process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    except OSError:
        return None
    return True


def last_write_time(run_dir: Path) -> float | None:
    """The latest modification time of the files the trainer keeps writing."""
    times = []
    for name in ("run.json", "metrics.jsonl"):
        try:
            times.append((run_dir / name).stat().st_mtime)
        except OSError:
            pass
    return max(times) if times else None


def run_status(info: dict, run_dir, now: float | None = None, stale_after: float = STALE_AFTER_S,
               this_host: str | None = None) -> tuple[str, str]:
    """`(status, reason)`: status is one of running, finished, failed, interrupted, crashed,
    unknown. A run.json saying "running" is crashed when its process is gone (same host: the pid
    no longer exists) or, when the process cannot be checked (another host), when nothing in the
    run directory was written for `stale_after` seconds."""
    run_dir = Path(run_dir)
    status = info.get("status")
    if status in FINAL_STATUSES:
        reason = str(info.get("error", "")) if status == "failed" else ""
        return status, reason
    if status != "running":
        return "unknown", "no run.json" if not info else f"status {status!r} in run.json"
    now = time.time() if now is None else now
    this_host = platform.node() if this_host is None else this_host
    pid = info.get("pid")
    if info.get("host") == this_host:
        alive = pid_alive(pid)
        if alive is False:
            return "crashed", f"its process {pid} on {this_host} is gone without a final status"
        if alive:
            return "running", f"process {pid} is alive"
    written = last_write_time(run_dir)
    if written is not None and now - written > stale_after:
        return "crashed", f"nothing written for {(now - written) / 60:.0f} min and its process cannot be checked"
    return "running", "recent writes"


# ---------------------------------------------------------------------------------- listing runs
@dataclass
class RunSummary:
    name: str
    path: Path
    info: dict
    status: str
    reason: str
    info_error: str = ""

    @property
    def start_time(self) -> str:
        return str(self.info.get("start_time", ""))

    @property
    def model(self) -> str:
        return str(self.info.get("model") or "")

    @property
    def num_parameters(self):
        return self.info.get("num_parameters")

    @property
    def best_metric(self) -> str:
        return str(self.info.get("best_metric") or "")

    @property
    def best(self):
        return self.info.get("best")

    @property
    def findings(self) -> list[str] | None:
        config = self.info.get("config")
        names = config.get("findings") if isinstance(config, dict) else None
        return [str(n) for n in names] if isinstance(names, list) else None


def read_run_info(run_dir) -> tuple[dict, str]:
    """run.json as a dict and an error message ("" when fine); {} when absent or unreadable."""
    path = Path(run_dir) / "run.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, ""
    except (OSError, ValueError) as error:
        return {}, f"run.json unreadable: {error}"
    if not isinstance(info, dict):
        return {}, "run.json does not hold a JSON object"
    return info, ""


def is_run_dir(path: Path) -> bool:
    return (path / "run.json").is_file() or (path / "metrics.jsonl").is_file()


def find_runs(root, now: float | None = None) -> list[RunSummary]:
    """The runs under `root` (its subdirectories holding run.json or metrics.jsonl, or `root`
    itself when it is one run), newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    dirs = [root] if is_run_dir(root) else sorted(p for p in root.iterdir() if p.is_dir() and is_run_dir(p))
    runs = []
    for d in dirs:
        info, error = read_run_info(d)
        status, reason = run_status(info, d, now=now)
        if error:
            reason = error
        runs.append(RunSummary(d.name, d, info, status, reason, error))
    runs.sort(key=lambda r: (r.start_time or _mtime_iso(r.path), r.name), reverse=True)
    return runs


def _mtime_iso(path: Path) -> str:
    written = last_write_time(path)
    return datetime.fromtimestamp(written).astimezone().isoformat(timespec="seconds") if written else ""


def run_files(run_dir) -> list[Path]:
    """Files worth downloading: checkpoints/*.npz and model.onnx (or any *.onnx) when present."""
    run_dir = Path(run_dir)
    files = sorted((run_dir / "checkpoints").glob("*.npz")) if (run_dir / "checkpoints").is_dir() else []
    files += sorted(run_dir.glob("*.onnx"))
    return [f for f in files if f.is_file()]


# ---------------------------------------------------------------------------------- reading logs
class BatchedMetricsReader(MetricsReader):
    """`MetricsReader` (same offsets, same tolerance, same `corrupt_lines`) that reads in blocks
    and parses lines in batches (see the module docstring for the measured reason). It also
    counts the bytes of a half-written last line (`pending_bytes`), left for the next read."""

    def __init__(self, path):
        super().__init__(path)
        self.pending_bytes = 0

    def read(self) -> list[dict]:
        records: list[dict] = []
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            self.pending_bytes = 0
            return records
        with f:
            f.seek(self.offset)
            carry = b""
            while True:
                block = f.read(READ_BLOCK)
                if not block:
                    break
                data = carry + block if carry else block
                end = data.rfind(b"\n") + 1
                if end:
                    records.extend(self._parse(data[:end]))
                    self.offset += end
                    carry = data[end:]
                else:
                    carry = data
        self.pending_bytes = len(carry)
        return records

    def _parse(self, data: bytes) -> list[dict]:
        lines = [line for line in data.split(b"\n") if line.strip()]
        out: list[dict] = []
        for i in range(0, len(lines), PARSE_BATCH):
            batch = lines[i:i + PARSE_BATCH]
            try:
                values = json.loads(b"[" + b",".join(batch) + b"]")
                if len(values) != len(batch):  # a line holding two values separated by a comma
                    raise ValueError("line count")
            except ValueError:
                values = []
                for line in batch:
                    try:
                        values.append(json.loads(line))
                    except ValueError:
                        values.append(None)
            for value in values:
                if isinstance(value, dict):
                    out.append(value)
                else:
                    self.corrupt_lines += 1
        return out


class SplitColumns:
    """The records of one split as columns: `columns[key]` is a list with one entry per record
    (None where a record lacks the key)."""

    def __init__(self):
        self.n = 0
        self.columns: dict[str, list] = {}

    def extend(self, records: list[dict]) -> None:
        if not records:
            return
        first = list(records[0])
        keys = dict.fromkeys(first + sorted(set().union(*records) - set(first)))  # union in C
        keys.pop("split", None)
        for key in keys:
            column = self.columns.get(key)
            if column is None:
                column = self.columns[key] = [None] * self.n
            column.extend([r.get(key) for r in records])
        for key, column in self.columns.items():
            if key not in keys:
                column.extend([None] * len(records))
        self.n += len(records)

    def keep(self, max_step) -> int:
        """Drop the records whose step is above `max_step` (a resume redoes them); returns how many."""
        steps = self.columns.get("step")
        if not steps:
            return 0
        keep = [i for i, s in enumerate(steps) if not isinstance(s, (int, float)) or s <= max_step]
        dropped = self.n - len(keep)
        if dropped:
            for key, column in self.columns.items():
                self.columns[key] = [column[i] for i in keep]
            self.n = len(keep)
        return dropped

    def frame(self) -> pd.DataFrame:
        if not self.n:
            return pd.DataFrame()
        frame = pd.DataFrame(self.columns)
        for key in frame.columns[frame.dtypes == object]:  # numbers with nulls (NaN is written as null)
            try:
                frame[key] = pd.to_numeric(frame[key])
            except (TypeError, ValueError):
                pass  # lists (per-finding AUROC) and strings stay as they are
        return frame


class RunLog:
    """One run's `metrics.jsonl`, followed incrementally: `update()` reads only the bytes appended
    since the last call and applies resume events the way `kinone.train.run_log.apply_resumes`
    does (a resume at step k drops the earlier records of steps after k). Thread-safe: one RunLog
    may serve every browser session of the dashboard."""

    def __init__(self, run_dir):
        self.dir = Path(run_dir)
        self.path = self.dir / "metrics.jsonl"
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.reader = BatchedMetricsReader(self.path)
        self.splits: dict[str, SplitColumns] = {}
        self.events: list[dict] = []
        self.other_records = 0
        self.version = 0
        self._identity = None
        self._frames: dict[str, tuple[int, pd.DataFrame]] = {}

    # -- reading
    def update(self) -> int:
        """Read what was appended; returns the number of new records."""
        with self._lock:
            try:
                st = os.stat(self.path)
                identity = (st.st_dev, st.st_ino)
            except FileNotFoundError:
                identity, st = None, None
            if self._identity is not None and (identity != self._identity or (st and st.st_size < self.reader.offset)):
                self._reset()  # the file was replaced or truncated: start over
            self._identity = identity
            if st is None:
                return 0
            records = self.reader.read()
            if records:
                self._apply(records)
                self.version += 1
            return len(records)

    def _apply(self, records: list[dict]) -> None:
        pending: list[dict] = []
        for record in records:
            if "event" in record:
                self._flush(pending)
                pending = []
                self.events.append(record)
                if record.get("event") == "resume":
                    k = record.get("step", 0)
                    for columns in self.splits.values():
                        columns.keep(k)
            else:
                pending.append(record)
        self._flush(pending)

    def _flush(self, records: list[dict]) -> None:
        by_split: dict[str, list[dict]] = {}
        for record in records:
            split = record.get("split")
            if isinstance(split, str):
                by_split.setdefault(split, []).append(record)
            else:
                self.other_records += 1
        for split, group in by_split.items():
            self.splits.setdefault(split, SplitColumns()).extend(group)

    # -- state
    @property
    def corrupt_lines(self) -> int:
        return self.reader.corrupt_lines

    @property
    def pending_bytes(self) -> int:
        return self.reader.pending_bytes

    @property
    def num_records(self) -> int:
        return sum(c.n for c in self.splits.values())

    def count(self, split: str) -> int:
        columns = self.splits.get(split)
        return columns.n if columns else 0

    def frame(self, split: str) -> pd.DataFrame:
        """The records of `split` as a DataFrame (cached until the log grows)."""
        with self._lock:
            cached = self._frames.get(split)
            if cached and cached[0] == self.version:
                return cached[1]
            columns = self.splits.get(split)
            frame = columns.frame() if columns else pd.DataFrame()
            self._frames[split] = (self.version, frame)
            return frame

    def last(self, split: str) -> dict | None:
        columns = self.splits.get(split)
        if not columns or not columns.n:
            return None
        return {k: v[-1] for k, v in columns.columns.items()}

    def resumes(self) -> list[dict]:
        return [e for e in self.events if e.get("event") == "resume"]


# ---------------------------------------------------------------------------------- derived views
def finding_names(info: dict, n: int) -> list[str]:
    """Finding (class) names from run.json's config["findings"], else "class 0" ... "class n-1"."""
    config = info.get("config") if isinstance(info, dict) else None
    names = config.get("findings") if isinstance(config, dict) else None
    if isinstance(names, list) and len(names) == n:
        return [str(x) for x in names]
    return [f"class {i}" for i in range(n)]


def _number(value) -> float:
    """A float from a JSON or NumPy number; NaN for anything else (None, strings, booleans)."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
        return float(value)
    return math.nan


def best_index(val: pd.DataFrame, metric: str = "mean_auroc") -> int | None:
    """Row of the best validation record: highest `metric` (lowest when it is a loss)."""
    if val.empty or metric not in val:
        return None
    values = pd.to_numeric(val[metric], errors="coerce")
    if values.isna().all():
        return None
    return int(values.idxmin() if "loss" in metric else values.idxmax())


def auroc_table(val: pd.DataFrame, info: dict, test: pd.DataFrame | None = None,
                metric: str = "mean_auroc") -> pd.DataFrame:
    """Per-finding AUROC at the latest and the best validation epoch (and the test split when
    logged): one row per finding, one column per record, NaN where undefined."""
    columns: dict[str, list[float]] = {}
    lengths = []
    picks = []
    if not val.empty and "auroc" in val:
        latest = len(val) - 1
        picks.append((f"latest (epoch {_epoch(val, latest)}, step {_step(val, latest)})", val.iloc[latest]["auroc"]))
        best = best_index(val, metric)
        if best is not None:
            picks.append((f"best (epoch {_epoch(val, best)}, step {_step(val, best)})", val.iloc[best]["auroc"]))
    if test is not None and not test.empty and "auroc" in test:
        picks.append(("test", test.iloc[-1]["auroc"]))
    for label, values in picks:
        if isinstance(values, list):
            columns[label] = [_number(v) for v in values]
            lengths.append(len(values))
    if not columns:
        return pd.DataFrame()
    n = max(lengths)
    for label, values in columns.items():
        columns[label] = values + [math.nan] * (n - len(values))
    table = pd.DataFrame(columns, index=pd.Index(finding_names(info, n), name="finding"))
    return table


def _epoch(frame: pd.DataFrame, i: int):
    value = _number(frame.iloc[i].get("epoch"))
    return int(value) + 1 if math.isfinite(value) else "?"


def _step(frame: pd.DataFrame, i: int):
    value = _number(frame.iloc[i].get("step"))
    return int(value) if math.isfinite(value) else "?"


def grad_norm_frame(log_frame: pd.DataFrame) -> pd.DataFrame:
    """The grad_norm records as step x layer (float, NaN where missing), indexed by step."""
    if log_frame.empty or "step" not in log_frame:
        return pd.DataFrame()
    layers = [c for c in log_frame.columns if c not in ("step", "epoch", "time", "split")]
    frame = log_frame[layers].apply(pd.to_numeric, errors="coerce").astype(float)
    frame.index = pd.Index(log_frame["step"], name="step")
    return frame


def gradient_health(grads: pd.DataFrame, vanishing_below: float = 1e-7, exploding_above: float = 1e3) -> pd.DataFrame:
    """One row per layer: its latest, median and largest gradient norm and a flag: "exploding"
    (latest norm non-finite or above `exploding_above`), "vanishing" (latest below
    `vanishing_below`), else "ok"."""
    if grads.empty:
        return pd.DataFrame(columns=["layer", "latest", "median", "max", "flag"])
    latest = grads.ffill().iloc[-1]
    rows = []
    for layer in grads.columns:
        values = grads[layer].to_numpy(dtype=float)
        last = float(latest[layer])
        finite = values[np.isfinite(values)]
        if not math.isfinite(last) or last > exploding_above:
            flag = "exploding"
        elif last < vanishing_below:
            flag = "vanishing"
        else:
            flag = "ok"
        rows.append({"layer": layer, "latest": last,
                     "median": float(np.median(finite)) if finite.size else math.nan,
                     "max": float(finite.max()) if finite.size else math.nan, "flag": flag})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------- downsampling
def downsample_indices(y, max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most `max_points` points of series `y` that keep its shape: the series is cut
    into buckets, and each bucket keeps its minimum and maximum (so spikes stay visible); the
    first and last points are always kept. NaNs count as neither minimum nor maximum."""
    y = np.asarray(y, dtype=float)
    n = len(y)
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, (max_points - 2) // 2)
    size = math.ceil(n / buckets)
    buckets = math.ceil(n / size)
    pad = buckets * size - n
    nan = np.isnan(y)
    low = np.concatenate([np.where(nan, np.inf, y), np.full(pad, np.inf)]).reshape(buckets, size)
    high = np.concatenate([np.where(nan, -np.inf, y), np.full(pad, -np.inf)]).reshape(buckets, size)
    base = np.arange(buckets) * size
    idx = np.concatenate([base + low.argmin(axis=1), base + high.argmax(axis=1), [0, n - 1]])
    return np.unique(idx[idx < n])


def downsample(frame: pd.DataFrame, y: str, max_points: int = MAX_POINTS) -> pd.DataFrame:
    """Rows of `frame` chosen by `downsample_indices` on column `y`."""
    if len(frame) <= max_points:
        return frame
    return frame.iloc[downsample_indices(pd.to_numeric(frame[y], errors="coerce").to_numpy(dtype=float), max_points)]


def stride_indices(n: int, max_points: int = MAX_POINTS) -> np.ndarray:
    """At most `max_points` evenly spaced indices of 0..n-1, the last one included."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))


def series(log: RunLog, split: str, column: str, max_points: int = MAX_POINTS,
           smooth: int = 0) -> pd.DataFrame:
    """`step` and `column` of one split, numeric, without missing values, downsampled; with
    `smooth` > 1 a rolling mean over that many records is taken first."""
    frame = log.frame(split)
    if frame.empty or column not in frame or "step" not in frame:
        return pd.DataFrame(columns=["step", column])
    out = pd.DataFrame({"step": pd.to_numeric(frame["step"], errors="coerce"),
                        column: pd.to_numeric(frame[column], errors="coerce")}).dropna()
    if smooth > 1:
        out[column] = out[column].rolling(smooth, min_periods=1).mean()
    return downsample(out.reset_index(drop=True), column, max_points)


def format_time(iso: str) -> str:
    """run.json's ISO time ("2026-11-30T07:31:50+00:00") as "2026-11-30 07:31:50 UTC"."""
    try:
        when = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return str(iso or "")
    if when.utcoffset() is not None and when.utcoffset().total_seconds() == 0:
        return when.strftime("%Y-%m-%d %H:%M:%S UTC")
    return when.isoformat(sep=" ")


def format_count(n) -> str:
    if not isinstance(n, (int, float)) or isinstance(n, bool):
        return ""
    n = float(n)
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


@dataclass
class RunOverview:
    """A row of the runs table."""
    run: str
    status: str
    start_time: str
    model: str
    parameters: str
    steps: int | None
    best: str
    detail: str = ""
    extra: dict = field(default_factory=dict)


def overview_row(summary: RunSummary, log: RunLog | None) -> RunOverview:
    """The runs-table row of a run: best metric from run.json when the run wrote it (at its end),
    else from its validation records so far."""
    best = ""
    if summary.best is not None and summary.best_metric:
        best = f"{summary.best_metric} {summary.best:.4f}" if isinstance(summary.best, (int, float)) else ""
    steps = summary.info.get("step")
    if log is not None:
        val = log.frame("val")
        metric = summary.best_metric or "mean_auroc"
        if not best and not val.empty:
            i = best_index(val, metric)
            if i is not None:
                best = f"{metric} {float(val.iloc[i][metric]):.4f}"
        train = log.last("train")
        if train and isinstance(train.get("step"), int):
            steps = max(steps or 0, train["step"])
    start = format_time(summary.start_time)
    return RunOverview(summary.name, summary.status, start, summary.model, format_count(summary.num_parameters),
                       steps if isinstance(steps, int) else None, best, summary.reason)
