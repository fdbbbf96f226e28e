"""Launching `mpiexec` from tests: where it is, how to call it, and a timeout so a hang fails.

mpiexec is looked for next to the Python running the tests (the venv's bin, where the
`mpich` wheel puts it), then on PATH. Without mpi4py or mpiexec the MPI tests are skipped
with the reason, except under CI=true, where they fail: CI installs both.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PROGRAM = Path(__file__).with_name("mpi_program.py")


@dataclass
class MpiRun:
    returncode: int
    output: str  # stdout and stderr of every rank and of mpiexec, interleaved
    timed_out: bool


def _find_mpiexec() -> str | None:
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return str(beside)
    return shutil.which("mpiexec")


def _missing() -> str | None:
    """Why MPI tests cannot run here (None when they can)."""
    try:
        import mpi4py  # noqa: F401  (importing the package does not initialise MPI)
    except ImportError:
        return "mpi4py is not installed (pip install mpi4py mpich)"
    if _find_mpiexec() is None:
        return f"no mpiexec next to {sys.executable} or on PATH (pip install mpich)"
    return None


def _launcher_flags(mpiexec: str) -> list[str]:
    """Open MPI refuses root and more ranks than cores without these; MPICH's Hydra needs none."""
    version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=30).stdout
    if "Open MPI" in version or "OpenRTE" in version:
        return ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    return []


@pytest.fixture(scope="session")
def run_mpi():
    """`run_mpi(ranks, *checks, timeout=120)`: mpi_program.py's checks under mpiexec."""
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"MPI tests must run in CI: {reason}")
        pytest.skip(reason)
    mpiexec = _find_mpiexec()
    flags = _launcher_flags(mpiexec)
    # One BLAS thread per rank: the ranks share the machine's cores.
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")

    def run(ranks: int, *checks: str, timeout: float = 120) -> MpiRun:
        command = [mpiexec, *flags, "-n", str(ranks), sys.executable, str(PROGRAM), *checks]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
        )
        try:
            output, _ = process.communicate(timeout=timeout)
            return MpiRun(process.returncode, output, timed_out=False)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # mpiexec and every rank it started
            output, _ = process.communicate()
            return MpiRun(process.returncode, output, timed_out=True)

    return run
