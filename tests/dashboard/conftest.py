"""Fixtures of the dashboard's tests: generated run directories (see dashboard_rundirs.py)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from dashboard_rundirs import make_runs


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    return make_runs(tmp_path / "runs")


@pytest.fixture
def old_files():
    """Sets a run's files' modification times an hour back (a writer that went silent)."""

    def age(run_dir: Path, seconds: float = 3600) -> None:
        when = time.time() - seconds
        for name in ("run.json", "metrics.jsonl"):
            if (run_dir / name).exists():
                os.utime(run_dir / name, (when, when))

    return age
