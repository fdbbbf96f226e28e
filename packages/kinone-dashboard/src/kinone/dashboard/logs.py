"""Following a run's `metrics.jsonl` incrementally into columns, one split at a time.

Speed (measured on the project's 2-core machine, see the package README): a 1,000,000-line
`metrics.jsonl` is read in about two seconds. Lines are parsed in batches of a few thousand with
one `json.loads` per batch (a JSON array built from the lines), about three times faster than
one `json.loads` per line; a batch holding a corrupt line is parsed again line by line, so a
corrupt line costs only itself. Records are kept as columns (one list per field and split),
not as a million dicts, and turned into pandas frames only when the log has grown.

The file is opened through `open_run_file` (a regular file inside the run, no link followed),
and no line is held in memory beyond `MAX_LINE_BYTES` (a longer one is skipped in bounded
blocks and reported as corrupt, with its line number and byte offset).
"""

from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .files import UnsafeRunFile, open_run_file

# Parsing: bytes read per block and lines per `json.loads` batch. Blocks of 1 MiB bound what a
# read holds (5 MiB peak past a 40 MiB line), and read a 1,000,000-line log as fast as blocks of
# 16 MiB did (4 runs each on the loaded 2-core machine: 4.1-9.7 s against 4.7-11.3 s).
READ_BLOCK = 2**20
PARSE_BATCH = 5000
# A metrics.jsonl line longer than this is corrupt (the longest record kinone.train writes, a
# gradient norm for each of EfficientNet-B7's 711 parameters, is 37 kB); it is skipped unheld.
MAX_LINE_BYTES = 2**20
# Corrupt lines remembered with their line number and offset (all are counted).
MAX_CORRUPT_SHOWN = 100


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
        self._long = self._add_corrupt(
            self.line, self.offset, seen, f"longer than {_size(MAX_LINE_BYTES)}, not ended yet"
        )
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
        return block[newline + 1 :]

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
            batch = numbered[b : b + PARSE_BATCH]
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
        for key in frame.columns[frame.dtypes == "object"]:  # numbers with nulls (NaN is written as null)
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
            if self._identity is not None and (
                identity != self._identity or (st and st.st_size < self.reader.position)
            ):
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


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
