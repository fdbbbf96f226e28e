"""Finding the runs under a folder and summarising each (run.json, read safely, and its status)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .files import UnsafeRunFile, open_run_file
from .status import last_write_time, run_status

# run.json is read whole on every refresh: larger than this, it is refused.
MAX_RUN_JSON_BYTES = 16 * 2**20


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
