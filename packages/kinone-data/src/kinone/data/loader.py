"""`DataLoader`: batches of a dataset, loaded in the main process or in worker processes.

    loader = DataLoader(dataset, batch_size=32, shuffle=True, num_workers=2, seed=0)
    for epoch in range(epochs):
        for images, labels in loader:      # Tensors; epoch k's order depends only on (seed, k)
            ...

Arguments, defaults and errors follow `torch.utils.data.DataLoader` (map-style and
`IterableDataset`s, `batch_size=None`, `persistent_workers`, `prefetch_factor`, `generator`;
`pin_memory` is accepted and changes nothing on the host, see `DataLoader`); the differences
are Kinone's additions:
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

Workers are restarted every epoch unless `persistent_workers=True` (then they start once and
serve every epoch; batches and augmentations are the same either way, since a sample's seed
does not depend on the worker), so the start cost is paid per epoch; and with fork, a
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

from .collate import default_collate, default_convert
from .dataset import IterableDataset
from .sampler import BatchSampler, RandomSampler, SequentialSampler, seed_of
from .transport import SlotReader, shared_memory_dir
from .worker import (
    EndOfStream,
    Fetcher,
    RandomStates,
    describe_sample,
    worker_loop,
    worker_seed,
)

__all__ = ["DataLoader", "default_collate"]

SHUTDOWN_SECONDS = 2.0  # how long workers get to exit on their own before being terminated
WORKER_EXIT_SECONDS = 1.0  # how long a worker whose pipe failed gets to be seen as exited
_FORKSERVER_PRELOAD = ["__main__", "kinone.data.worker", "kinone.data.transforms"]
_END = object()  # what _next_batch returns when the epoch is over


class DataLoader:
    """Iterate over `dataset` in batches (see the module docstring).

    The arguments are `torch.utils.data.DataLoader`'s, in its order, with its defaults and
    errors; `seed` is Kinone's addition.

    Args:
        dataset: a map-style dataset (`__getitem__(int)` and `__len__`), or an
            `IterableDataset` (each worker iterates its own copy; see dataset.py).
        batch_size: samples per batch; None turns auto-batching off: each item is one sample,
            passed through `collate_fn` (`default_convert`: arrays become Tensors, unstacked).
        shuffle: visit the samples in a new random order every epoch (a `RandomSampler`
            seeded with `seed`).
        sampler: an iterable of indices (exclusive with `shuffle`).
        batch_sampler: an iterable of index lists (exclusive with `batch_size`, `shuffle`,
            `sampler` and `drop_last`).
        num_workers: worker processes; 0 loads in the main process.
        collate_fn: turns a list of samples into a batch (`default_collate`; `default_convert`
            when `batch_size=None`).
        pin_memory: accepted for PyTorch scripts; batches are host NumPy arrays either way.
            Pinned (page-locked) memory matters only for copies to a GPU, and there
            `DeviceLoader` (device_loader.py) stages every batch through reused pinned buffers
            and copies it on a stream of its own, whatever this flag says. So on a CPU-only
            run it changes nothing, and nothing warns.
        drop_last: drop the last batch of an epoch if it is short (with workers and an
            iterable dataset: each worker's last short batch, as in PyTorch).
        timeout: seconds to wait for a batch from a worker before raising; 0 waits as long as
            the worker is alive.
        worker_init_fn: called as `worker_init_fn(worker_id)` in each worker after seeding
            (once per worker: every epoch, or once for `persistent_workers`).
        multiprocessing_context: "fork", "forkserver", "spawn", a multiprocessing context, or
            None for "fork" where available, else "spawn".
        generator: a `numpy.random.Generator` (Kinone's generators are NumPy's): when `seed`
            is None, the loader's seed is drawn from it once, here, and the shuffling and the
            workers' seeds derive from that seed; so a generator in a given state gives the same
            epochs, as PyTorch's `generator=` does.
        prefetch_factor: batches each worker keeps in flight (2 when None); only with
            `num_workers > 0`, as in PyTorch.
        persistent_workers: keep the worker processes alive between epochs (they start once,
            run `worker_init_fn` once, and keep their seed, as PyTorch's do); needs
            `num_workers > 0`. Batches and augmentations are the same either way.
        pin_memory_device: accepted for PyTorch scripts (see `pin_memory`).
        in_order: accepted; batches always come in sampler order (PyTorch's `in_order=False`
            permits, and does not require, another order).
        seed: the one seed of the loader's randomness; None draws it from `generator`, else
            from `kinone.autograd`'s default generator (so `manual_seed` fixes it).
    """

    def __init__(
        self,
        dataset,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler=None,
        batch_sampler=None,
        num_workers: int = 0,
        collate_fn=None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn=None,
        multiprocessing_context=None,
        generator=None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        pin_memory_device: str = "",
        in_order: bool = True,
        seed: int | None = None,
    ):
        iterable = isinstance(dataset, IterableDataset)
        prefetch_factor = _check_workers(num_workers, timeout, prefetch_factor, persistent_workers)
        shuffle = _check_order(iterable, batch_size, shuffle, sampler, batch_sampler, drop_last)

        self.dataset = dataset
        self.seed = seed_of(seed, generator, "DataLoader")
        self.generator = generator
        self._iterable = iterable
        self._owns_sampler = sampler is None and batch_sampler is None
        if batch_sampler is not None:
            batch_size, drop_last = None, False
        elif not iterable:
            if sampler is None:
                sampler = RandomSampler(dataset, seed=self.seed) if shuffle else SequentialSampler(dataset)
            if batch_size is not None:
                batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.sampler, self.batch_sampler = sampler, batch_sampler
        self.batch_size, self.drop_last = batch_size, bool(drop_last)
        self._auto_collation = batch_sampler is not None or (iterable and batch_size is not None)
        self.num_workers = num_workers
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self.pin_memory, self.pin_memory_device = bool(pin_memory), pin_memory_device
        self.timeout = float(timeout)
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.prefetch_factor = prefetch_factor
        self.persistent_workers = bool(persistent_workers)
        self.in_order = bool(in_order)
        self._next_epoch = 0
        self._skip = 0  # batches of `_next_epoch` already consumed before a resume
        self._iterator = None  # weak reference to the newest iterator
        self._pool = None  # the worker processes, kept between epochs with persistent_workers

    @property
    def _index_sampler(self):
        """What each request is drawn from: batches of indices, or indices (no auto-batching)."""
        return self.batch_sampler if self.batch_sampler is not None else self.sampler

    def __len__(self) -> int:
        """Batches per epoch (for an iterable dataset: from its `len()`, as PyTorch)."""
        if not self._iterable:
            return len(self._index_sampler)
        length = len(self.dataset)  # TypeError when the stream has no len(), as in PyTorch
        if self.batch_size is None:
            return length
        return length // self.batch_size if self.drop_last else -(-length // self.batch_size)

    def __iter__(self):
        epoch, skip = self._next_epoch, self._skip
        self._next_epoch, self._skip = epoch + 1, 0
        if hasattr(self._index_sampler, "set_epoch"):
            self._index_sampler.set_epoch(epoch)
        if self.num_workers == 0:
            iterator = _SingleProcessIterator(self, epoch, skip)
        else:
            iterator = _MultiProcessIterator(self, epoch, skip, self._worker_pool(epoch))
        self._iterator = weakref.ref(iterator)
        return iterator

    def _worker_pool(self, epoch: int) -> _WorkerPool:
        """A new pool of workers, or with `persistent_workers` the loader's own, its requests
        from an earlier iteration (an epoch left by `break`) drained first."""
        if not self.persistent_workers:
            return _WorkerPool(self, epoch)
        if self._pool is not None and self._pool.alive:
            try:
                self._pool.drain()
            except Exception:
                self._pool.close()
        if self._pool is None or not self._pool.alive:
            self._pool = _WorkerPool(self, epoch)
        return self._pool

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
    """ "fork" where the platform has it, except in a process that has initialised MPI
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
    except Exception:
        return False


def _check_workers(num_workers, timeout, prefetch_factor, persistent_workers) -> int | None:
    """PyTorch's checks of the worker arguments; returns the prefetch factor to use."""
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(
            "DataLoader: num_workers option should be non-negative; use num_workers=0 to disable multiprocessing "
            f"(got {num_workers!r})"
        )
    if timeout < 0:
        raise ValueError(f"DataLoader: timeout option should be non-negative (got {timeout})")
    if num_workers == 0 and prefetch_factor is not None:
        raise ValueError(
            "DataLoader: prefetch_factor option could only be specified in multiprocessing: let num_workers > 0 "
            "to enable multiprocessing, otherwise set prefetch_factor to None"
        )
    if persistent_workers and num_workers == 0:
        raise ValueError("DataLoader: persistent_workers option needs num_workers > 0")
    if num_workers == 0:
        return None
    if prefetch_factor is None:
        return 2
    if isinstance(prefetch_factor, bool) or not isinstance(prefetch_factor, int) or prefetch_factor < 1:
        raise ValueError(
            f"DataLoader: prefetch_factor must be a positive int (batches each worker keeps in flight); "
            f"got {prefetch_factor!r}"
        )
    return prefetch_factor


def _check_order(iterable, batch_size, shuffle, sampler, batch_sampler, drop_last) -> bool:
    """PyTorch's checks of the arguments that choose the order and the batches; returns shuffle."""
    if iterable:
        for name, value in (
            ("shuffle", shuffle if shuffle not in (False, None) else None),
            ("sampler", sampler),
            ("batch_sampler", batch_sampler),
        ):
            if value is not None:
                raise ValueError(
                    f"DataLoader with IterableDataset: expected unspecified {name} option, but got {name}={value!r} "
                    "(a stream has no indices to order)"
                )
    shuffle = bool(shuffle)
    if sampler is not None and shuffle:
        raise ValueError(
            "DataLoader: sampler option is mutually exclusive with shuffle (the sampler decides the order)"
        )
    if batch_sampler is not None:
        if batch_size != 1 or shuffle or sampler is not None or drop_last:
            raise ValueError(
                "DataLoader: batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and drop_last"
            )
    elif batch_size is None:
        if drop_last:
            raise ValueError(
                "DataLoader: batch_size=None option disables auto-batching and is mutually exclusive with drop_last"
            )
    elif isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"DataLoader: batch_size should be a positive integer value or None; got {batch_size!r}")
    return shuffle


class _BaseIterator:
    def __init__(self, loader: DataLoader, epoch: int, skip: int):
        self.epoch = epoch
        self.batches_done = skip
        self.exhausted = False
        try:
            self._length = len(loader)
        except TypeError:  # a batch_sampler or an iterable dataset without len()
            self._length = None
        self._collate_fn = loader.collate_fn
        self._seed = loader.seed
        self._iterable = loader._iterable
        self._auto_collation = loader._auto_collation
        # (position in the epoch, request): each sample is seeded by its index (worker.py), so
        # skipped batches leave the later ones unchanged. A stream's requests are all None, and
        # its skipped batches are loaded and dropped (a stream cannot jump ahead).
        if self._iterable:
            self._requests = zip(itertools.count(), itertools.repeat(None))
        else:
            self._requests = itertools.islice(enumerate(loader._index_sampler), skip, None)

    def __iter__(self):
        return self

    def __len__(self) -> int:
        if self._length is None:
            raise TypeError("this DataLoader has no len(): its batch_sampler or iterable dataset has none")
        return self._length

    def close(self) -> None:
        """Stop early and release everything the iterator holds."""

    def _skip_stream(self, skip: int) -> None:
        """Resuming an iterable dataset mid-epoch: load the batches already seen and drop them."""
        self.batches_done = 0
        for _ in range(skip):
            next(self)


class _SingleProcessIterator(_BaseIterator):
    def __init__(self, loader: DataLoader, epoch: int, skip: int):
        super().__init__(loader, epoch, skip)
        self._fetcher = Fetcher(loader.dataset, loader.batch_size, loader.drop_last, None, self._auto_collation)
        if self._iterable:
            self._skip_stream(skip)

    def __next__(self):
        next_request = next(self._requests, None)
        if next_request is None:
            return self._stop()
        batch_index, request = next_request
        states = RandomStates()
        try:
            samples = self._fetcher.samples(request, self._seed, self.epoch)
            batch = self._collate_fn(samples)
        except EndOfStream:
            return self._stop()
        except Exception as error:
            if hasattr(error, "add_note"):  # Python >= 3.11
                error.add_note(f"DataLoader: {describe_sample(getattr(error, 'sample_index', None), batch_index)}")
            raise
        finally:
            states.restore()
        self.batches_done += 1
        return batch

    def _stop(self):
        self.exhausted = True
        raise StopIteration


class _WorkerPool:
    """A DataLoader's worker processes, their pipes and shared-memory slots, and the requests
    in flight. It outlives one iteration with `persistent_workers`; its finalizer (run by
    `close()`, by garbage collection, or at interpreter exit) holds the processes, not the pool."""

    def __init__(self, loader: DataLoader, epoch: int):
        self.num_workers = loader.num_workers
        self.prefetch_factor = loader.prefetch_factor
        self.pending = deque()  # (batch index, worker id), in the order the batches are due
        self.released = []  # (worker id, slot id) of slots the main process no longer uses
        self.runs = 0  # iterations served: a stream restarts with each
        self.reader = SlotReader()
        self.slot_prefix = os.path.join(shared_memory_dir(), f"kinone-data-{os.getpid()}-{uuid.uuid4().hex[:12]}-")
        self.workers, self.connections = [], []
        context = loader._context()
        self._shutdown = weakref.finalize(
            self, _shut_down, self.workers, self.connections, self.reader, self.slot_prefix
        )
        try:
            for worker_id in range(self.num_workers):
                self._start(context, loader, epoch, worker_id)
        except BaseException:
            self.close()
            raise

    def _start(self, context, loader: DataLoader, epoch: int, worker_id: int) -> None:
        ours, theirs = context.Pipe(duplex=True)
        process = context.Process(
            target=worker_loop,
            args=(
                loader.dataset,
                loader.collate_fn,
                theirs,
                worker_id,
                self.num_workers,
                worker_seed(loader.seed, epoch, worker_id),
                epoch,
                loader.worker_init_fn,
                f"{self.slot_prefix}{worker_id}-",
                self.prefetch_factor + 2,
                loader.batch_size,
                loader.drop_last,
                loader._auto_collation,
            ),
            name=f"kinone-data-worker-{worker_id}",
            daemon=True,
        )
        process.start()
        theirs.close()
        self.workers.append(process)
        self.connections.append(ours)

    @property
    def alive(self) -> bool:
        return self._shutdown.alive

    def close(self) -> None:
        self._shutdown()

    def drain(self) -> None:
        """Receive and drop the replies to an earlier iteration's requests (a persistent pool
        whose last epoch was left early), so that the next iteration starts clean."""
        while self.pending:
            _, worker_id = self.pending.popleft()
            reply = self.connections[worker_id].recv()
            if reply[0] == "batch":  # dropped at once: its slot comes back through `released`
                self.reader.unpack(worker_id, *reply[2:], self.released.append)

    def return_released_slots(self) -> None:
        by_worker: dict[int, list[int]] = {}
        while self.released:
            worker_id, slot_id = self.released.pop()
            by_worker.setdefault(worker_id, []).append(slot_id)
        for worker_id, slot_ids in by_worker.items():
            try:
                self.connections[worker_id].send(("free", slot_ids))
            except OSError:
                pass


class _MultiProcessIterator(_BaseIterator):
    def __init__(self, loader: DataLoader, epoch: int, skip: int, pool: _WorkerPool):
        super().__init__(loader, epoch, skip)
        self._timeout = loader.timeout
        self._pool = pool
        self._persistent = loader.persistent_workers
        self._workers, self._connections = pool.workers, pool.connections
        pool.runs += 1
        self._run = pool.runs
        self._streaming = set(range(pool.num_workers)) if self._iterable else None  # workers whose stream goes on
        self._next_worker = 0
        self._closed = False
        try:
            for _ in range(pool.num_workers * pool.prefetch_factor):
                self._dispatch()
            if self._iterable:
                self._skip_stream(skip)
        except BaseException:
            self.close()
            raise

    def __next__(self):
        if self._closed:
            raise StopIteration
        try:
            batch = self._next_batch()
        except BaseException:  # including KeyboardInterrupt: no worker may outlive the loop
            self.close()
            raise
        if batch is _END:
            self.exhausted = True
            self._end()
            raise StopIteration
        self.batches_done += 1
        return batch

    def _next_batch(self):
        pool = self._pool
        while pool.pending:
            pool.return_released_slots()
            batch_index, worker_id = pool.pending.popleft()
            reply = self._receive(worker_id, batch_index)
            if reply[0] == "error":
                raise self._worker_error(worker_id, reply)
            if reply[1] != batch_index:
                raise RuntimeError(f"DataLoader: worker {worker_id} sent batch {reply[1]}, expected {batch_index}")
            if reply[0] == "end":  # this worker's stream is over; the others may go on
                self._streaming.discard(worker_id)
                self._dispatch()
                continue
            self._dispatch()
            return pool.reader.unpack(worker_id, *reply[2:], pool.released.append)
        return _END

    def _end(self) -> None:
        """The epoch is over: a persistent pool waits for the next one, any other stops."""
        self._closed = True
        if not self._persistent:
            self._pool.close()

    def close(self) -> None:
        """Stop the workers now (garbage collection of the iterator, after a `break`, does too;
        a persistent pool lives on in its loader)."""
        self._closed = True
        self._pool.close()

    # ------------------------------------------------------------------ internals
    def _dispatch(self) -> None:
        worker_id = self._choose_worker()
        if worker_id is None:
            return
        next_request = next(self._requests, None)
        if next_request is None:
            return
        batch_index, request = next_request
        if request is not None and self._auto_collation:
            request = list(request)  # a batch sampler may yield tuples or arrays
        message = ("fetch", batch_index, request, self._seed, self.epoch, self._run)
        try:
            self._connections[worker_id].send(message)
        except OSError:
            pass  # the worker is gone: _receive reports it when this batch (or an earlier one) is due
        self._pool.pending.append((batch_index, worker_id))

    def _choose_worker(self) -> int | None:
        """Batch b goes to worker b % num_workers; for a stream, to the next worker still streaming."""
        num_workers = self._pool.num_workers
        for _ in range(num_workers):
            worker_id = self._next_worker
            self._next_worker = (worker_id + 1) % num_workers
            if self._streaming is None or worker_id in self._streaming:
                return worker_id
        return None

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
        except Exception:
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
    except Exception:
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
