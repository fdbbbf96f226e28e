"""The runs table: one row per run, and the formatting of its times and counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .derived import best_index
from .listing import RunSummary
from .logs import RunLog


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
    return RunOverview(
        summary.name,
        summary.status,
        start,
        summary.model,
        summary.device,
        summary.world_size,
        format_count(summary.num_parameters),
        steps if isinstance(steps, int) else None,
        best,
        summary.reason,
    )
