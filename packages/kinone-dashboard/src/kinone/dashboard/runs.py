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

What a run directory holds is not trusted (runs are copied between machines and users): a file
is read or served only when it is a regular file inside the run directory, reached without
following a link (`open_run_file`, checked at the moment of reading), and no line of
`metrics.jsonl` is held in memory beyond `MAX_LINE_BYTES` (a longer one is skipped in bounded
blocks and reported as corrupt, with its line number and byte offset).
"""

from __future__ import annotations

import errno
import fnmatch
import json
import math
import os
import platform
import stat
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

# A "running" run that has written nothing (run.json, metrics.jsonl) for this long, and whose
# process cannot be checked (another host), is reported as crashed. Training writes a line per
# step; only a very long validation pass stays silent longer.
STALE_AFTER_S = 600.0
# Points per plotted series (min/max per bucket keeps spikes visible).
MAX_POINTS = 2000
# Parsing: bytes read per block and lines per `json.loads` batch. Blocks of 1 MiB bound what a
# read holds (5 MiB peak past a 40 MiB line), and read a 1,000,000-line log as fast as blocks of
# 16 MiB did (4 runs each on the loaded 2-core machine: 4.1-9.7 s against 4.7-11.3 s).
READ_BLOCK = 2**20
PARSE_BATCH = 5000
# A metrics.jsonl line longer than this is corrupt (the longest record kinone.train writes, a
# gradient norm for each of EfficientNet-B7's 711 parameters, is 37 kB); it is skipped unheld.
MAX_LINE_BYTES = 2**20
# run.json is read whole on every refresh: larger than this, it is refused.
MAX_RUN_JSON_BYTES = 16 * 2**20
# Corrupt lines remembered with their line number and offset (all are counted).
MAX_CORRUPT_SHOWN = 100
# What the Files section offers for download (paths relative to the run directory).
DOWNLOADS = ("checkpoints/*.npz", "*.onnx")

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
    def device(self) -> str:
        """Where the run trained (`config.device` as kinone-train records it; "" if unknown)."""
        config = self.info.get("config")
        device = config.get("device") if isinstance(config, dict) else None
        return str(device) if isinstance(device, str) else ""

    @property
    def world_size(self) -> int | None:
        """How many processes trained the run (`config.world_size`, kinone-train under
        mpiexec records it; None if unknown)."""
        config = self.info.get("config")
        size = config.get("world_size") if isinstance(config, dict) else None
        return size if isinstance(size, int) and not isinstance(size, bool) and size >= 1 else None

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
    """run.json as a dict and an error message ("" when fine); {} when absent or unreadable,
    and when it is a link, not a regular file, or larger than `MAX_RUN_JSON_BYTES`."""
    try:
        with open_run_file(run_dir, "run.json") as f:
            text = f.read(MAX_RUN_JSON_BYTES + 1)
    except FileNotFoundError:
        return {}, ""
    except UnsafeRunFile as error:
        return {}, f"run.json refused: {error}"
    except OSError as error:
        return {}, f"run.json unreadable: {error}"
    if len(text) > MAX_RUN_JSON_BYTES:
        return {}, f"run.json refused: larger than {MAX_RUN_JSON_BYTES // 2**20} MiB"
    try:
        info = json.loads(text)
    except ValueError as error:
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


# ---------------------------------------------------------------------------------- reading files safely
class UnsafeRunFile(OSError):
    """A path in a run directory that the dashboard refuses to read or serve."""


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
# Without O_NONBLOCK, opening a FIFO waits for a writer: the page would hang.
_OPEN_FILE = _OPEN_FLAGS | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_OPEN_DIR = _OPEN_FLAGS | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_DIRECTORY", 0)
_WALK_WITH_DIR_FD = hasattr(os, "O_NOFOLLOW") and hasattr(os, "O_DIRECTORY") and os.open in os.supports_dir_fd


def _relative_parts(relative) -> tuple[str, ...]:
    """The components of a path relative to the run directory; refused when it could leave it."""
    text = str(relative)
    if os.name == "nt":  # "\\" separates folders, and "C:" or "name:stream" name other files
        text = text.replace("\\", "/")
    parts = PurePosixPath(text).parts
    if (not parts or text.startswith("/") or any(part in (".", "..") for part in parts)
            or (os.name == "nt" and any(":" in part for part in parts))):
        raise UnsafeRunFile(f"{relative}: not a regular file inside the run directory (expected a relative path)")
    return parts


def _refused(relative, why: str) -> UnsafeRunFile:
    return UnsafeRunFile(f"{relative}: not a regular file inside the run directory ({why})")


def _open_walking(root: str, parts: tuple[str, ...], relative) -> int:
    """POSIX: open each folder below the run directory, then the file, never following a link
    (O_NOFOLLOW on every component, relative to the folder already open), so a component
    swapped for a link at any moment is refused rather than followed."""
    fd = os.open(root, _OPEN_FLAGS | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            try:
                inner = os.open(part, _OPEN_DIR, dir_fd=fd)
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _refused(relative, f"{part} is a link or not a folder") from None
                raise
            os.close(fd)
            fd = inner
        try:
            return os.open(parts[-1], _OPEN_FILE, dir_fd=fd)
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.EISDIR):
                raise _refused(relative, "a link or a folder") from None
            raise
    finally:
        os.close(fd)


def _open_checking(root: str, parts: tuple[str, ...], relative) -> int:
    """Elsewhere (Windows): the path must resolve to itself inside the run directory, and the
    file opened must be the one that path named."""
    path = os.path.join(root, *parts)
    if os.path.realpath(path) != path or os.path.islink(path):
        raise _refused(relative, "it resolves elsewhere")
    before = os.lstat(path)
    fd = os.open(path, _OPEN_FILE)
    after = os.fstat(fd)
    if (before.st_dev, before.st_ino) != (after.st_dev, after.st_ino):
        os.close(fd)
        raise _refused(relative, "it changed while being opened")
    return fd


def open_run_file(run_dir, relative):
    """Open `relative` (a path inside `run_dir`, e.g. "checkpoints/best.npz") for reading in
    binary mode, only when it is a regular file reached without following any link; otherwise
    UnsafeRunFile (FileNotFoundError when it does not exist). Checked on every call, at the
    moment of opening: a file swapped for a link after it was listed is refused."""
    parts = _relative_parts(relative)
    root = os.path.realpath(run_dir)
    fd = (_open_walking if _WALK_WITH_DIR_FD else _open_checking)(root, parts, relative)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _refused(relative, "a FIFO, device or socket" if not stat.S_ISDIR(mode) else "a folder")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def is_download(relative: str) -> bool:
    """Whether `relative` (a posix path inside a run) is of a kind the Files section offers."""
    return any(fnmatch.fnmatchcase(relative, pattern) and relative.count("/") == pattern.count("/")
               for pattern in DOWNLOADS)


def run_files(run_dir) -> list[Path]:
    """Files worth downloading: checkpoints/*.npz and *.onnx, each only when it is a regular file
    inside the run directory (not a link, not a FIFO or device; `checkpoints` not a link)."""
    run_dir = Path(run_dir)
    candidates = []
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir() and not checkpoints.is_symlink():
        candidates += sorted(checkpoints.glob("*.npz"))
    candidates += sorted(run_dir.glob("*.onnx"))
    return [path for path in candidates if _is_plain_file(run_dir, path)]


def _is_plain_file(run_dir: Path, path: Path) -> bool:
    try:
        with open_run_file(run_dir, path.relative_to(run_dir).as_posix()):
            return True
    except OSError:
        return False


def read_run_file(run_dir, relative) -> bytes:
    """The bytes of a file the Files section offers (`DOWNLOADS`), checked as `open_run_file`
    does at the moment of reading; UnsafeRunFile for anything else."""
    parts = _relative_parts(relative)
    if not is_download("/".join(parts)):
        raise _refused(relative, f"only {' and '.join(DOWNLOADS)} are served")
    with open_run_file(run_dir, "/".join(parts)) as f:
        return f.read()


# ---------------------------------------------------------------------------------- reading logs
@dataclass
class CorruptLine:
    """A skipped line of metrics.jsonl: its 1-based number, byte offset, length and why."""
    line: int
    offset: int
    length: int
    reason: str


class BatchedMetricsReader:
    """Reads `metrics.jsonl` incrementally, as `kinone.train.run_log.MetricsReader` does (each
    `read()` returns the records appended since the last call; a half-written last line waits
    for the next call; a corrupt line is skipped and counted), but in blocks of `READ_BLOCK`
    bytes parsed in batches (see the module docstring for the measured reason), and in bounded
    memory: a line longer than `MAX_LINE_BYTES` is never held, only scanned for its end, and is
    reported as corrupt at once, even while still being written. A refresh resumes where the
    last one stopped (inside such a line too), so nothing is read twice.

    `offset` is the byte offset of the first line not yet consumed and `line` its number;
    `pending_bytes` the length of a half-written last line; `corrupt` the first
    `MAX_CORRUPT_SHOWN` corrupt lines; `bytes_read` every byte read so far; `refused` why the
    file was not read (a link or not a regular file), else ""."""

    def __init__(self, path):
        self.path = Path(path)
        self.offset = 0
        self.line = 1
        self.corrupt_lines = 0
        self.corrupt: list[CorruptLine] = []
        self.pending_bytes = 0
        self.bytes_read = 0
        self.refused = ""
        self._long: CorruptLine | None = None  # the over-long line being skipped, if any
        self._scanned = 0  # how far it has been scanned

    @property
    def position(self) -> int:
        """The byte offset the next read starts from."""
        return self._scanned if self._long else self.offset

    def read(self) -> list[dict]:
        records: list[dict] = []
        self.pending_bytes = 0
        self.refused = ""
        try:
            f = open_run_file(self.path.parent, self.path.name)
        except FileNotFoundError:
            return records
        except UnsafeRunFile as error:
            self.refused = str(error)
            return records
        except OSError as error:  # e.g. not readable by the user serving the dashboard
            self.refused = f"{self.path.name}: {error.strerror or error}"
            return records
        with f:
            f.seek(self.position)
            carry = b""
            while True:
                block = f.read(READ_BLOCK)
                if not block:
                    break
                self.bytes_read += len(block)
                if self._long:
                    block = self._skip_long_line(block)
                    if not block:
                        continue
                data = carry + block if carry else block
                end = data.rfind(b"\n") + 1
                if end:
                    records.extend(self._parse(data[:end]))
                carry = data[end:]
                if len(carry) > MAX_LINE_BYTES:
                    self._start_long_line(len(carry))
                    carry = b""
        self.pending_bytes = len(carry)
        return records

    # -- lines longer than MAX_LINE_BYTES
    def _start_long_line(self, seen: int) -> None:
        self._long = self._add_corrupt(self.line, self.offset, seen,
                                       f"longer than {_size(MAX_LINE_BYTES)}, not ended yet")
        self._scanned = self.offset + seen

    def _skip_long_line(self, block: bytes) -> bytes:
        """Scan `block` for the end of the long line; returns what follows it (b"" if none)."""
        newline = block.find(b"\n")
        if newline < 0:
            self._scanned += len(block)
            if self._long:
                self._long.length = self._scanned - self._long.offset
            return b""
        end = self._scanned + newline + 1
        self._long.length = end - self._long.offset
        self._long.reason = f"longer than {_size(MAX_LINE_BYTES)} ({_size(self._long.length)})"
        self._long = None
        self.offset, self.line = end, self.line + 1
        return block[newline + 1:]

    def _add_corrupt(self, line: int, offset: int, length: int, reason: str) -> CorruptLine:
        self.corrupt_lines += 1
        entry = CorruptLine(line, offset, length, reason)
        if len(self.corrupt) < MAX_CORRUPT_SHOWN:
            self.corrupt.append(entry)
        return entry

    # -- complete lines
    def _parse(self, data: bytes) -> list[dict]:
        """The records of `data` (complete lines, ending in a newline); advances offset and line."""
        lines = data.split(b"\n")[:-1]
        numbered = [(i, line) for i, line in enumerate(lines) if line.strip()]
        starts = None  # byte offsets of the lines, computed only when a line is corrupt

        def corrupt(i: int, reason: str) -> None:
            nonlocal starts
            if starts is None:
                starts = np.concatenate([[0], np.cumsum([len(x) + 1 for x in lines])]) + self.offset
            self._add_corrupt(self.line + i, int(starts[i]), len(lines[i]), reason)

        if any(len(line) > MAX_LINE_BYTES for _, line in numbered):
            for i, line in numbered:
                if len(line) > MAX_LINE_BYTES:
                    corrupt(i, f"longer than {_size(MAX_LINE_BYTES)} ({_size(len(line))})")
            numbered = [(i, line) for i, line in numbered if len(line) <= MAX_LINE_BYTES]
        out: list[dict] = []
        for b in range(0, len(numbered), PARSE_BATCH):
            batch = numbered[b:b + PARSE_BATCH]
            try:
                values = json.loads(b"[" + b",".join(line for _, line in batch) + b"]")
                if len(values) != len(batch):  # a line holding two values separated by a comma
                    raise ValueError("line count")
            except ValueError:
                values = [_loads_or(line, _NOT_JSON) for _, line in batch]
            for (i, _), value in zip(batch, values):
                if isinstance(value, dict):
                    out.append(value)
                else:
                    corrupt(i, "not JSON" if value is _NOT_JSON else "not a JSON object")
        self.offset += len(data)
        self.line += len(lines)
        return out


_NOT_JSON = object()


def _loads_or(line: bytes, default):
    try:
        return json.loads(line)
    except ValueError:
        return default


def _size(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n:,} bytes"


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
            if self._identity is not None and (identity != self._identity or (st and st.st_size < self.reader.position)):
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
                k = record.get("step", 0)
                if record.get("event") == "resume" and _is_number(k):
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
    def corrupt(self) -> list[CorruptLine]:
        return self.reader.corrupt

    @property
    def refused(self) -> str:
        return self.reader.refused

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
        """The resume events (those with a numeric step: the others are not applied)."""
        return [e for e in self.events if e.get("event") == "resume" and _is_number(e.get("step", 0))]


# ---------------------------------------------------------------------------------- derived views
def finding_names(info: dict, n: int) -> list[str]:
    """Finding (class) names from run.json's config["findings"], else "class 0" ... "class n-1"."""
    config = info.get("config") if isinstance(info, dict) else None
    names = config.get("findings") if isinstance(config, dict) else None
    if isinstance(names, list) and len(names) == n:
        return [str(x) for x in names]
    return [f"class {i}" for i in range(n)]


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
    device: str
    processes: int | None
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
    return RunOverview(summary.name, summary.status, start, summary.model, summary.device, summary.world_size,
                       format_count(summary.num_parameters),
                       steps if isinstance(steps, int) else None, best, summary.reason)
