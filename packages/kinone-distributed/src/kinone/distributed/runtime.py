"""The MPI runtime: start-up, who am I, and aborting every rank when one fails.

`import kinone.distributed` does not import mpi4py (importing it initialises MPI); `init()`
does. Until then, and in a process not started by mpiexec, `rank()` is 0, `world_size()` is 1
and every collective of this package returns its input unchanged, so single-process code
needs no branches.

Why the abort hook: with mpi4py, an unhandled exception on one rank leaves that rank blocked
in `MPI_Finalize` (registered at exit) while the others wait in their next collective: the
job hangs forever (mpi4py's documentation, `mpi4py.run`; chainermn #236). `init()` replaces
`sys.excepthook` so that such an exception prints its traceback, then one line
"kinone.distributed: rank R failed: <error>", then calls `COMM_WORLD.Abort(1)`, which makes
mpiexec end every rank (what `python -m mpi4py` does, for programs started another way), and
leaves with `os._exit(1)` (see `_abort_now`).
"""

from __future__ import annotations

import os
import sys
import time

# (variable holding the world size, variable that must be present beside it), per launcher.
# Slurm: SLURM_STEP_NUM_TASKS is the size of the srun step; SLURM_NTASKS (the allocation's)
# is the fallback. A batch script run by sbatch also has SLURM_PROCID, but no step size.
_LAUNCHERS = (
    ("PMI_SIZE", "PMI_RANK"),  # MPICH's Hydra, Intel MPI
    ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),  # Open MPI's mpiexec
    ("SLURM_STEP_NUM_TASKS", "SLURM_PROCID"),  # srun
    ("SLURM_NTASKS", "SLURM_PROCID"),
)


class _State:
    comm = None  # mpi4py's COMM_WORLD once init() ran
    rank = 0
    size = 1
    local_rank = 0
    previous_excepthook = None


_state = _State()


def launched_under_mpi(environ=None) -> bool:
    """True when this process was started by mpiexec or srun with more than one rank.

    Read from environment variables only (mpi4py is not imported): PMI_SIZE/PMI_RANK (MPICH,
    Intel MPI), OMPI_COMM_WORLD_SIZE (Open MPI), PMIX_RANK (PMIx launchers, when no size says
    otherwise), SLURM_STEP_NUM_TASKS or SLURM_NTASKS with SLURM_PROCID (srun).
    """
    env = os.environ if environ is None else environ
    for size_variable, rank_variable in _LAUNCHERS:
        size = _positive_int(env.get(size_variable))
        if size is not None and rank_variable in env:
            return size > 1
    return "PMIX_RANK" in env


def _positive_int(text) -> int | None:
    try:
        value = int(text)
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def init() -> None:
    """Initialise MPI (idempotent) and install the abort-on-exception hook (with > 1 rank)."""
    if _state.comm is not None:
        return
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError, OSError) as error:
        raise RuntimeError(
            f"kinone.distributed.init: mpi4py could not be imported ({error}); "
            "install it with `pip install mpi4py mpich` (or kinone-distributed[mpich])"
        ) from error
    comm = MPI.COMM_WORLD
    _state.rank, _state.size = comm.Get_rank(), comm.Get_size()
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    _state.local_rank = node.Get_rank()
    node.Free()
    _state.comm = comm
    if _state.size > 1:
        _install_abort_hook()


def _install_abort_hook() -> None:
    if _state.previous_excepthook is None:
        _state.previous_excepthook = sys.excepthook
        sys.excepthook = _abort_on_exception


def _abort_on_exception(exc_type, exc, traceback) -> None:
    """sys.excepthook under MPI: the usual traceback, one line naming the rank, then Abort."""
    try:
        _state.previous_excepthook(exc_type, exc, traceback)
        detail = f"{exc_type.__name__}: {exc}" if str(exc) else exc_type.__name__
        print(f"kinone.distributed: rank {_state.rank} failed: {detail}", file=sys.stderr, flush=True)
    finally:
        _abort_now(1)


def _abort_now(status: int) -> None:
    """MPI_Abort, then leave at once. MPICH's MPI_Abort only asks the process manager to end
    the job and may return before it does (measured with the mpich 5.0.2 wheel: in 20 of 30
    runs the aborting rank went on to its next line), and a process that went on would enter
    its next collective or MPI_Finalize; `os._exit` ends it without either."""
    sys.stdout.flush()
    sys.stderr.flush()
    # mpiexec forwards each rank's output asynchronously and stops forwarding once the job is
    # aborted: give it a moment to carry the lines just written (seen in CI: the traceback
    # arrived, the rank's one-line summary after it did not).
    time.sleep(0.25)
    try:
        _state.comm.Abort(status)
    finally:
        os._exit(status)


def abort(status: int = 1) -> None:
    """End every rank now with exit status `status` (MPI_Abort); in one process, SystemExit.

    For a rank that must stop while the others may be waiting in a collective: `sys.exit(n)`
    is not an exception, so the hook above does not see it, and the rank would wait in
    MPI_Finalize while the others wait for it (measured: mpiexec -n 2 hung until killed).
    """
    if active_comm() is None:
        raise SystemExit(status)
    _abort_now(status)


def is_initialized() -> bool:
    """Whether `init()` has run in this process."""
    return _state.comm is not None


def rank() -> int:
    """This process's rank in COMM_WORLD (0 without init)."""
    return _state.rank


def world_size() -> int:
    """The number of ranks in COMM_WORLD (1 without init)."""
    return _state.size


def local_rank() -> int:
    """This process's rank among the ranks on its machine (to pick a GPU; 0 without init)."""
    return _state.local_rank


def is_main() -> bool:
    """True on rank 0: the one that writes files and prints progress."""
    return _state.rank == 0


def barrier() -> None:
    """Wait until every rank gets here (a no-op in one process)."""
    comm = active_comm()
    if comm is not None:
        comm.Barrier()


def active_comm():
    """COMM_WORLD when there is someone to talk to (init() ran, more than one rank); else None."""
    return _state.comm if _state.size > 1 else None


def mpi():
    """The `mpi4py.MPI` module (only called once `active_comm()` returned a communicator)."""
    from mpi4py import MPI

    return MPI
