"""kinone.distributed across real ranks: mpi_program.py's checks under mpiexec, 2 and 3 ranks
(oversubscribing a 2-core machine is fine). Each launch has a timeout, so a hang fails."""

from __future__ import annotations

import re

import pytest

CHECKS = [
    "allreduce",
    "overlap",
    "optimizer",
    "standin_device",
    "broadcast",
    "broadcast_state",
    "all_gather",
    "check_same",
    "average_buffers",
    "sampler",
    "sync_batchnorm",
]


@pytest.mark.parametrize("ranks", [2, 3])
@pytest.mark.parametrize("check", CHECKS)
def test_check_passes_on_every_rank(run_mpi, check, ranks):
    result = run_mpi(ranks, check)
    assert not result.timed_out, f"{check} hung on {ranks} ranks:\n{result.output}"
    assert result.returncode == 0, f"{check} failed on {ranks} ranks:\n{result.output}"
    passed = sorted(int(r) for r in re.findall(rf"ok {check} rank (\d+)", result.output))
    assert passed == list(range(ranks)), result.output


@pytest.mark.parametrize("ranks", [2, 3])
def test_an_exception_on_rank_1_aborts_every_rank(run_mpi, ranks):
    """The others wait in a barrier; the job must end (not hang) with the rank named."""
    result = run_mpi(ranks, "fail_on_rank_1", timeout=60)
    assert not result.timed_out, f"the job hung after rank 1 failed:\n{result.output}"
    assert result.returncode != 0
    assert "kinone.distributed: rank 1 failed: RuntimeError: boom on purpose" in result.output, result.output
    assert "the barrier returned" not in result.output


def test_a_killed_rank_ends_the_job(run_mpi):
    result = run_mpi(2, "sigkill_rank_1", timeout=60)
    assert not result.timed_out, f"the job hung after rank 1 was killed:\n{result.output}"
    assert result.returncode != 0
    assert "the barrier returned" not in result.output
    assert "signal 9" in result.output or "Killed" in result.output, result.output  # mpiexec's report


def test_abort_on_one_rank_ends_every_rank(run_mpi):
    """dist.abort(status) is how a rank stops on purpose (sys.exit would leave the others
    waiting). MPICH's MPI_Abort may return before the job ends (in 20 of 30 runs here): the
    rank must not go on. Five launches, since that return is a race."""
    for _ in range(5):
        result = run_mpi(2, "abort_on_rank_1", timeout=60)
        assert not result.timed_out, f"the job hung after rank 1 called abort:\n{result.output}"
        assert result.returncode == 3, result.output
        assert "abort returned" not in result.output and "the barrier returned" not in result.output, result.output
