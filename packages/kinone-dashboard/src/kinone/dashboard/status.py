"""Telling a run's status from its run.json and its files: a "crashed" run is one whose writer
stopped without setting a final status (its process is gone, or, on another host, nothing was
written for `STALE_AFTER_S`)."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

# A "running" run that has written nothing (run.json, metrics.jsonl) for this long, and whose
# process cannot be checked (another host), is reported as crashed. Training writes a line per
# step; only a very long validation pass stays silent longer.
STALE_AFTER_S = 600.0
FINAL_STATUSES = ("finished", "failed", "interrupted")


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


def run_status(
    info: dict, run_dir, now: float | None = None, stale_after: float = STALE_AFTER_S, this_host: str | None = None
) -> tuple[str, str]:
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
