"""`DataLoader`: batches of a dataset, loaded in the main process or in worker processes.

    loader = DataLoader(dataset, batch_size=32, shuffle=True, num_workers=2, seed=0)
    for epoch in range(epochs):
        for images, labels in loader:      # Tensors; epoch k's order depends only on (seed, k)
            ...

Semantics follow `torch.utils.data.DataLoader`; the differences are Kinone's additions:
`seed` (one integer from which the order, every worker's seed and every sample's random
augmentation derive: a sample's augmentation depends on (seed, epoch, dataset index) only, see
worker.py), `state_dict()` / `load_state_dict()` (resume in the
middle of an epoch, with the same batches and augmentations as an uninterrupted run), and
tuples that stay tuples in `default_collate`.

Worker processes (`num_workers > 0`). Each worker has its own duplex pipe. Batch `b` goes to
worker `b % num_workers`, which keeps `prefetch_factor` batches in flight, and the main process
reads worker `b % num_workers`'s pipe for it: batches come back in sampler order, equal to
those of `num_workers=0`. Arrays travel through shared memory (transport.py). The main
process waits on the pipe and on the worker's process sentinel together, so a worker that
dies (killed, out of memory, a crash in C code) is reported at once, never waited for, and
always the same way, "DataLoader: worker N (pid P) exited unexpectedly (signal SIGKILL)",
whether the pipe said EOF or ConnectionResetError (what a killed worker with requests unread
in its pipe leaves); the other workers are shut down. With
`timeout > 0` a batch that takes longer raises. An exception in a worker is re-raised in the
main process, same type where possible, with the worker's formatted traceback and the failing
sample index. Every exit path shuts the workers down: the end of the epoch, an error, Ctrl-C
or any exception inside `__next__`, and `close()` / garbage collection of the iterator (a
`break` out of the loop); workers also leave by themselves when the main process dies.

Start method. `multiprocessing_context=None` means "fork" where the platform has it (Linux),
else "spawn"; in a process that has initialised MPI (mpi4py, e.g. `mpiexec -n 2 kinone-train`)
it means "forkserver", since forking an MPI process is a known crash. Measured on the 2-core
development machine, starting 2 workers that are ready to work (numpy, Pillow and kinone
imported):

| start method | 1st epoch | later epochs | the dataset |
| --- | ---: | ---: | --- |
| fork | 17-23 ms | 4-7 ms | shared copy-on-write, never pickled |
| forkserver (modules preloaded) | 280-320 ms | 15-17 ms + pickling | pickled for every worker, every epoch |
| spawn | 530-650 ms | 400-550 ms + pickling | pickled for every worker, every epoch |

(Pickling NIH's 112,120 file names into 2 workers added 60-100 ms per epoch.)

Workers are restarted every epoch, so the start cost is paid per epoch; and with fork, a
large in-memory dataset (a pre-resized image cache of several GB) is shared instead of
pickled into every worker. Fork is unsafe only in a process that runs other threads holding
locks; such a program should pass `multiprocessing_context="forkserver"` (or "spawn"), which
also works (workers are spawn-safe: everything they need is picklable module-level code).
"""

from __future__ import annotations

import importlib
import itertools
import multiprocessing
import os
import signal
import sys
import time
import uuid
import weakref
from collections import deque
from multiprocessing.connection import wait

from .collate import default_collate
from .sampler import BatchSampler, RandomSampler, SequentialSampler, draw_seed
from .transport import SlotReader, shared_memory_dir
from .worker import (
    RandomStates,
    describe_sample,
    load_samples,
    worker_loop,
    worker_seed,
)

__all__ = ["DataLoader", "default_collate"]

SHUTDOWN_SECONDS = 2.0  # how long workers get to exit on their own before being terminated
WORKER_EXIT_SECONDS = 1.0  # how long a worker whose pipe failed gets to be seen as exited
_FORKSERVER_PRELOAD = ["__main__", "kinone.data.worker", "kinone.data.transforms"]


class DataLoader:
    """Iterate over `dataset` in batches (see the module docstring).

    Args:
        dataset: a map-style dataset (`__getitem__(int)` and `__len__`).
        batch_size: samples per batch.
        shuffle: visit the samples in a new random order every epoch (a `RandomSampler`
            seeded with `seed`).
        sampler: an iterable of indices (exclusive with `shuffle`).
        batch_sampler: an iterable of index lists (exclusive with `batch_size`, `shuffle`,
            `sampler` and `drop_last`).
        num_workers: worker processes; 0 loads in the main process.
        collate_fn: turns a list of samples into a batch (`default_collate`).
        drop_last: drop the last batch of an epoch if it is short.
        timeout: seconds to wait for a batch from a worker before raising; 0 waits as long as
            the worker is alive.
        worker_init_fn: called as `worker_init_fn(worker_id)` in each worker after seeding.
        multiprocessing_context: "fork", "forkserver", "spawn", a multiprocessing context, or
            None for "fork" where available, else "spawn".
        seed: the one seed of the loader's randomness; None draws it from
            `kinone.autograd`'s default generator (so `manual_seed` fixes it).
        prefetch_factor: batches each worker keeps in flight.
    """

    def __init__(
        self,
        dataset,
        batch_size: int | None = 1,
        shuffle: bool = False,
        *,
        sampler=None,
        batch_sampler=None,
        num_workers: int = 0,
        collate_fn=None,
        drop_last: bool = False,
        timeout: float = 0.0,
        worker_init_fn=None,
        multiprocessing_context=None,
        seed: int | None = None,
        prefetch_factor: int = 2,
    ):
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers must be a non-negative int; got {num_workers!r}")
        if timeout < 0:
            raise ValueError(f"DataLoader: timeout must be >= 0 seconds; got {timeout}")
        if not isinstance(prefetch_factor, int) or prefetch_factor < 1:
            raise ValueError(f"DataLoader: prefetch_factor must be a positive int; got {prefetch_factor!r}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler and shuffle=True are exclusive (the sampler decides the order)")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError(
                    "DataLoader: batch_sampler is exclusive with batch_size, shuffle, sampler and drop_last"
                )
        elif batch_size is None or isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"DataLoader: batch_size must be a positive int; got {batch_size!r}")

        self.dataset = dataset
        self.seed = draw_seed() if seed is None else int(seed)
        self._owns_sampler = sampler is None and batch_sampler is None
        if batch_sampler is None:
            if sampler is None:
                sampler = RandomSampler(dataset, seed=self.seed) if shuffle else SequentialSampler(dataset)
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.sampler = getattr(batch_sampler, "sampler", sampler)
        self.batch_sampler = batch_sampler
        self.batch_size = getattr(batch_sampler, "batch_size", None)
        self.drop_last = getattr(batch_sampler, "drop_last", False)
        self.num_workers = num_workers
        self.collate_fn = default_collate if collate_fn is None else collate_fn
        self.timeout = float(timeout)
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.prefetch_factor = prefetch_factor
        self._next_epoch = 0
        self._skip = 0  # batches of `_next_epoch` already consumed before a resume
        self._iterator = None  # weak reference to the newest iterator

    def __len__(self) -> int:
        """Batches per epoch."""
        return len(self.batch_sampler)

    def __iter__(self):
        epoch, skip = self._next_epoch, self._skip
        self._next_epoch, self._skip = epoch + 1, 0
        if hasattr(self.batch_sampler, "set_epoch"):
            self.batch_sampler.set_epoch(epoch)
        iterator_type = _MultiProcessIterator if self.num_workers > 0 else _SingleProcessIterator
        iterator = iterator_type(self, epoch, skip)
        self._iterator = weakref.ref(iterator)
        return iterator

    # ------------------------------------------------------------------ position
    def set_epoch(self, epoch: int) -> None:
        """Make the next `iter(loader)` run epoch `epoch` from its first batch."""
        self._next_epoch, self._skip = int(epoch), 0

    def state_dict(self) -> dict:
        """Where the loader is: `{"seed", "epoch", "batches_done"}` (plain ints, JSON-ready).

        During an epoch: the epoch and the batches already yielded; between epochs: the next
        epoch and 0. A loader given this state continues with exactly the next batch."""
        iterator = self._iterator() if self._iterator is not None else None
        if iterator is not None and not iterator.exhausted:
            epoch, done = iterator.epoch, iterator.batches_done
            if iterator._length is not None and done >= iterator._length:  # all yielded, StopIteration not yet
                epoch, done = epoch + 1, 0
            return {"seed": self.seed, "epoch": epoch, "batches_done": done}
        return {"seed": self.seed, "epoch": self._next_epoch, "batches_done": self._skip}

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state_dict()`: the next `iter(loader)` resumes that epoch."""
        missing = {"seed", "epoch", "batches_done"} - set(state)
        if missing:
            raise KeyError(f"DataLoader.load_state_dict: missing keys {sorted(missing)}")
        self.seed = int(state["seed"])
        if self._owns_sampler and hasattr(self.sampler, "seed"):
            self.sampler.seed = self.seed
        self._next_epoch, self._skip = int(state["epoch"]), int(state["batches_done"])

    # ------------------------------------------------------------------ workers
    def _context(self):
        context = self.multiprocessing_context
        if context is None:
            context = default_start_method()
        if isinstance(context, str):
            context = multiprocessing.get_context(context)
        if context.get_start_method() == "forkserver":
            context.set_forkserver_preload(_FORKSERVER_PRELOAD)  # no effect once the server runs
        return context


def default_start_method() -> str:
    """"fork" where the platform has it, except in a process that has initialised MPI
    (forking one is a known crash: the child inherits the MPI library's threads, sockets and
    registered memory), where it is "forkserver"; "spawn" where neither exists."""
    methods = multiprocessing.get_all_start_methods()
    if mpi_is_initialized():
        return "forkserver" if "forkserver" in methods else "spawn"
    return "fork" if "fork" in methods else "spawn"


def mpi_is_initialized() -> bool:
    """Whether this process has initialised MPI through mpi4py (looked up, never imported)."""
    mpi = sys.modules.get("mpi4py.MPI")
    try:
        return bool(mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized())
    except Exception:  # noqa: BLE001 - a broken or partial mpi4py: assume it is not
        return False


class _BaseIterator:
    def __init__(self, loader: DataLoader, epoch: int, skip: int):
        self.epoch = epoch
        self.batches_done = skip
        self.exhausted = False
        try:
            self._length = len(loader)
        except TypeError:  # a batch_sampler without len()
            self._length = None
        self._dataset = loader.dataset
        self._collate_fn = loader.collate_fn
        self._seed = loader.seed
        # (position in the epoch, indices); each sample is seeded by its index (worker.py),
        # so skipped batches leave the later ones unchanged
        self._index_batches = itertools.islice(enumerate(loader.batch_sampler), skip, None)

    def __iter__(self):
        return self

    def __len__(self) -> int:
        if self._length is None:
            raise TypeError("this DataLoader's batch_sampler has no len()")
        return self._length

    def close(self) -> None:
        """Stop early and release everything the iterator holds."""


class _SingleProcessIterator(_BaseIterator):
    def __next__(self):
        next_batch = next(self._index_batches, None)
        if next_batch is None:
            self.exhausted = True
            raise StopIteration
        batch_index, indices = next_batch
        states = RandomStates()
        try:
            samples = load_samples(self._dataset, indices, self._seed, self.epoch)
            batch = self._collate_fn(samples)
        except Exception as error:
            if hasattr(error, "add_note"):  # Python >= 3.11
                error.add_note(f"DataLoader: {describe_sample(getattr(error, 'sample_index', None), batch_index)}")
            raise
        finally:
            states.restore()
        self.batches_done += 1
        return batch


class _MultiProcessIterator(_BaseIterator):
    def __init__(self, loader: DataLoader, epoch: int, skip: int):
        super().__init__(loader, epoch, skip)
        self._timeout = loader.timeout
        self._num_workers = loader.num_workers
        self._pending = deque()  # (batch index, worker id), in the order the batches are due
        self._next_worker = 0
        self._released = []  # (worker id, slot id) of slots the main process no longer uses
        self._reader = SlotReader()
        self._slot_prefix = os.path.join(shared_memory_dir(), f"kinone-data-{os.getpid()}-{uuid.uuid4().hex[:12]}-")
        self._workers, self._connections = [], []
        context = loader._context()
        # Runs once: from close(), when the iterator is garbage-collected (a `break`), or at
        # interpreter exit; it holds the workers, not the iterator.
        self._shutdown = weakref.finalize(
            self, _shut_down, self._workers, self._connections, self._reader, self._slot_prefix
        )
        self._closed = False
        try:
            for worker_id in range(self._num_workers):
                ours, theirs = context.Pipe(duplex=True)
                process = context.Process(
                    target=worker_loop,
                    args=(
                        loader.dataset,
                        loader.collate_fn,
                        theirs,
                        worker_id,
                        self._num_workers,
                        worker_seed(self._seed, epoch, worker_id),
                        epoch,
                        loader.worker_init_fn,
                        f"{self._slot_prefix}{worker_id}-",
                        loader.prefetch_factor + 2,
                        self._seed,
                    ),
                    name=f"kinone-data-worker-{worker_id}",
                    daemon=True,
                )
                process.start()
                theirs.close()
                self._workers.append(process)
                self._connections.append(ours)
            for _ in range(self._num_workers * loader.prefetch_factor):
                self._dispatch()
        except BaseException:
            self.close()
            raise

    def __next__(self):
        if self._closed:
            raise StopIteration
        if not self._pending:
            self.exhausted = True
            self.close()
            raise StopIteration
        try:
            self._return_released_slots()
            batch_index, worker_id = self._pending.popleft()
            reply = self._receive(worker_id, batch_index)
            if reply[0] == "error":
                raise self._worker_error(worker_id, reply)
            if reply[1] != batch_index:
                raise RuntimeError(f"DataLoader: worker {worker_id} sent batch {reply[1]}, expected {batch_index}")
            self._dispatch()
            batch = self._reader.unpack(worker_id, *reply[2:], self._released.append)
        except BaseException:  # including KeyboardInterrupt: no worker may outlive the loop
            self.close()
            raise
        self.batches_done += 1
        return batch

    def close(self) -> None:
        """Stop the workers now (garbage collection of the iterator, after a `break`, does too)."""
        self._closed = True
        self._shutdown()

    # ------------------------------------------------------------------ internals
    def _dispatch(self) -> None:
        next_batch = next(self._index_batches, None)
        if next_batch is None:
            return
        batch_index, indices = next_batch
        worker_id = self._next_worker
        self._next_worker = (worker_id + 1) % self._num_workers
        message = ("fetch", batch_index, list(indices))
        try:
            self._connections[worker_id].send(message)
        except OSError:
            pass  # the worker is gone: _receive reports it when this batch (or an earlier one) is due
        self._pending.append((batch_index, worker_id))

    def _return_released_slots(self) -> None:
        by_worker: dict[int, list[int]] = {}
        while self._released:
            worker_id, slot_id = self._released.pop()
            by_worker.setdefault(worker_id, []).append(slot_id)
        for worker_id, slot_ids in by_worker.items():
            try:
                self._connections[worker_id].send(("free", slot_ids))
            except OSError:
                pass

    def _receive(self, worker_id: int, batch_index: int):
        connection, process = self._connections[worker_id], self._workers[worker_id]
        deadline = time.monotonic() + self._timeout if self._timeout > 0 else None
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = wait([connection, process.sentinel], remaining)
            if connection in ready:  # first: a batch the worker sent before dying is still good
                try:
                    return connection.recv()
                except (EOFError, OSError) as error:
                    raise self._connection_lost(worker_id, batch_index, error) from None
            if process.sentinel in ready:
                process.join(WORKER_EXIT_SECONDS)
                raise self._worker_died(worker_id, batch_index)
            if deadline is not None and time.monotonic() >= deadline:
                raise RuntimeError(
                    f"DataLoader timed out after {self._timeout:g} s waiting for batch {batch_index} from worker "
                    f"{worker_id} (pid {process.pid}); a sample takes longer to load than timeout= allows, "
                    "or the dataset's __getitem__ is stuck"
                )

    def _connection_lost(self, worker_id: int, batch_index: int, error: BaseException) -> RuntimeError:
        """The pipe to a worker failed. A worker killed while requests sat unread in its pipe
        makes the read fail with ConnectionResetError rather than EOFError: either way, ask the
        process how it ended and report that."""
        process = self._workers[worker_id]
        process.join(WORKER_EXIT_SECONDS)
        if process.exitcode is not None:
            return self._worker_died(worker_id, batch_index)
        return RuntimeError(
            f"DataLoader: lost the connection to worker {worker_id} (pid {process.pid}), which is still running, "
            f"while loading batch {batch_index} ({type(error).__name__}: {error})"
        )

    def _worker_died(self, worker_id: int, batch_index: int) -> RuntimeError:
        process = self._workers[worker_id]
        code = process.exitcode
        how = f"exit code {code}"
        if code is not None and code < 0:
            try:
                how = f"signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"signal {-code}"
        return RuntimeError(
            f"DataLoader: worker {worker_id} (pid {process.pid}) exited unexpectedly ({how}) while loading "
            f"batch {batch_index}; if it was killed for memory, lower batch_size, prefetch_factor or num_workers"
        )

    def _worker_error(self, worker_id: int, reply) -> BaseException:
        _, batch_index, index, (module_name, qualname), type_name, text = reply
        where = "in worker_init_fn" if batch_index is None else describe_sample(index, batch_index)
        message = (
            f"Caught {type_name} in DataLoader worker {worker_id} (pid {self._workers[worker_id].pid}) {where}.\n"
            f"Original traceback in the worker:\n{text.rstrip()}"
        )
        error_type = _exception_class(module_name, qualname)
        try:
            error = error_type(_KeyErrorMessage(message) if issubclass(error_type, KeyError) else message)
        except Exception:  # noqa: BLE001 - its constructor wants other arguments
            error = RuntimeError(message)
        try:
            error.worker_id, error.sample_index = worker_id, index
        except AttributeError:
            pass
        return error


def _exception_class(module_name: str, qualname: str) -> type:
    """The exception class a worker named, or RuntimeError when it cannot be found here."""
    try:
        found = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except Exception:  # noqa: BLE001 - not importable here (e.g. defined in a function)
        return RuntimeError
    return found if isinstance(found, type) and issubclass(found, BaseException) else RuntimeError


def _shut_down(workers, connections, reader, slot_prefix) -> None:
    """Ask every worker to exit, give them SHUTDOWN_SECONDS, then terminate (and kill) the rest;
    remove the slot files of workers that could not clean up after themselves."""
    for connection in connections:
        try:
            connection.send(None)
        except OSError:
            pass
    deadline = time.monotonic() + SHUTDOWN_SECONDS
    for process in workers:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in workers:
        if process.is_alive():
            process.terminate()
            process.join(1.0)
        if process.is_alive():
            process.kill()
            process.join()
    for connection in connections:
        connection.close()
    reader.close()
    _remove_files_with_prefix(slot_prefix)


class _KeyErrorMessage(str):
    """KeyError shows repr(message): make that repr the readable, multi-line text itself."""

    def __repr__(self) -> str:
        return str(self)


def _remove_files_with_prefix(prefix: str) -> None:
    folder, start = os.path.split(prefix)
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if name.startswith(start):
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass
