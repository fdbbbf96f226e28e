"""DataLoader worker processes: same batches as num_workers=0, seeds, worker info, errors,
timeouts, and no process left behind on any exit path."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from kinone.autograd import Tensor, rand
from kinone.data import DataLoader, Dataset, TensorDataset, get_worker_info
from kinone.data import loader as loader_module
from kinone.data import transforms as T

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process checks")


class Images(Dataset):
    """uint8 images with a random augmentation, as a real pipeline has."""

    def __init__(self, n=24, size=20):
        rng = np.random.default_rng(0)
        self.images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
        self.transform = T.Compose([T.RandomResizedCrop(12), T.RandomHorizontalFlip(), T.ToArray()])

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        noise = np.float32(np.random.rand()) + np.float32(rand(1).item())
        return self.transform(self.images[i]) + noise, i


class WorkerIdentity(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        info = get_worker_info()
        return i, info.id, info.num_workers, info.seed % 2**62, os.getpid(), info.epoch


class Sleepy(Dataset):
    def __init__(self, n=8, seconds=0.05, slow_index=None, slow_seconds=0.0):
        self.n, self.seconds, self.slow_index, self.slow_seconds = n, seconds, slow_index, slow_seconds

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        time.sleep(self.slow_seconds if i == self.slow_index else self.seconds)
        return i, os.getpid()


class Failing(Dataset):
    def __init__(self, error):
        self.error = error

    def __len__(self):
        return 12

    def __getitem__(self, i):
        if i == 7:
            raise self.error
        return np.zeros(2, np.float32)


class Suicidal(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 5:
            os.kill(os.getpid(), signal.SIGKILL)
        return i


def arrays(loader):
    return [tuple(field.data.copy() for field in batch) for batch in loader]


def same(a, b):
    return len(a) == len(b) and all(all(np.array_equal(x, y) for x, y in zip(p, q)) for p, q in zip(a, b))


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, finished but not yet reaped by its new parent, is dead)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False


def no_children_left():
    children = multiprocessing.active_children()  # also reaps finished ones
    return not children


def no_slot_files():
    return (
        not [n for n in os.listdir("/dev/shm") if n.startswith(f"kinone-data-{os.getpid()}-")]
        if os.path.isdir("/dev/shm")
        else True
    )


# ------------------------------------------------------------------ same batches as num_workers=0
@pytest.mark.parametrize("num_workers", [1, 2, 3])
def test_workers_give_the_batches_of_num_workers_0_with_augmentations(num_workers):
    reference = arrays(DataLoader(Images(), batch_size=5, shuffle=True, seed=3))
    loader = DataLoader(Images(), batch_size=5, shuffle=True, seed=3, num_workers=num_workers)
    assert same(arrays(loader), reference)
    assert no_children_left() and no_slot_files()
    # the next epoch differs, identically again
    second = arrays(loader)
    assert not same(second, reference)
    zero = DataLoader(Images(), batch_size=5, shuffle=True, seed=3)
    arrays(zero)
    assert same(second, arrays(zero))


def test_batches_held_by_the_caller_are_never_overwritten():
    loader = DataLoader(Images(n=40), batch_size=4, seed=0, num_workers=2, prefetch_factor=1)
    held = list(loader)  # every batch kept alive: workers must not reuse their memory
    assert same([tuple(f.data for f in b) for b in held], arrays(DataLoader(Images(n=40), batch_size=4, seed=0)))
    images = held[0][0]
    assert isinstance(images, Tensor) and images.data.flags.writeable
    images.data[...] = 0  # batches are ordinary writeable arrays
    del held, images
    assert no_children_left() and no_slot_files()


def test_custom_collate_fn_with_tensors_strings_and_arrays_in_workers():
    def collate(samples):
        return {
            "x": Tensor(np.stack([s[0] for s in samples])),
            "names": [f"s{s[1]}" for s in samples],
            "raw": np.array([s[1] for s in samples]),
        }

    data = TensorDataset(np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10))
    batches = list(DataLoader(data, batch_size=4, collate_fn=collate, num_workers=2))
    assert [b["names"] for b in batches][-1] == ["s8", "s9"]
    assert isinstance(batches[0]["x"], Tensor) and batches[0]["x"].tolist() == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert isinstance(batches[1]["raw"], np.ndarray) and batches[1]["raw"].tolist() == [4, 5, 6, 7]


class Growing(Dataset):
    """Batch b (of 4 samples) holds arrays of 600 (b + 1) float64: each batch outgrows the last."""

    def __len__(self):
        return 24

    def __getitem__(self, i):
        return np.full((i // 4 + 1) * 600, i, dtype=np.float64), np.arange(i % 3, dtype=np.int32)[:0]


def test_growing_batches_and_the_pipe_fallback(monkeypatch):
    reference = arrays(DataLoader(Growing(), batch_size=4))
    assert same(arrays(DataLoader(Growing(), batch_size=4, num_workers=2)), reference)
    monkeypatch.setattr(loader_module, "shared_memory_dir", lambda: "/nonexistent-kinone-dir")
    assert same(arrays(DataLoader(Growing(), batch_size=4, num_workers=2)), reference)  # through the pipe
    assert no_children_left()


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_other_start_methods(method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"{method} not available")
    data = TensorDataset(np.random.default_rng(0).random((9, 3)).astype(np.float32), np.arange(9))
    reference = arrays(DataLoader(data, batch_size=2, shuffle=True, seed=1))
    assert same(
        arrays(DataLoader(data, batch_size=2, shuffle=True, seed=1, num_workers=2, multiprocessing_context=method)),
        reference,
    )
    assert no_children_left()


def test_the_default_start_method_is_forkserver_once_mpi_is_initialised(monkeypatch):
    """Forking a process that initialised MPI is a known crash; mpi4py is looked up, not imported."""
    import types

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    assert loader_module.default_start_method() == "fork"
    initialised = {"value": True}
    mpi = types.SimpleNamespace(Is_initialized=lambda: initialised["value"], Is_finalized=lambda: False)
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", mpi)
    assert loader_module.default_start_method() == "forkserver"
    assert DataLoader(TensorDataset(np.zeros((2, 1))), num_workers=1)._context().get_start_method() == "forkserver"
    initialised["value"] = False
    assert loader_module.default_start_method() == "fork"


# ------------------------------------------------------------------ seeds and worker info
def sample_rows(loader):
    """One list per sample: the fields of WorkerIdentity."""
    return [list(row) for batch in loader for row in zip(*(field.tolist() for field in batch))]


def test_worker_info_and_deterministic_worker_seeds():
    loader = DataLoader(WorkerIdentity(), batch_size=2, num_workers=2, seed=5)
    rows = sample_rows(loader)
    assert [r[0] for r in rows] == list(range(8))
    assert [r[1] for r in rows] == [0, 0, 1, 1, 0, 0, 1, 1]  # batch b goes to worker b % 2
    assert {r[2] for r in rows} == {2} and {r[5] for r in rows} == {0}
    seeds, pids = {r[1]: r[3] for r in rows}, {r[1]: r[4] for r in rows}
    assert seeds[0] != seeds[1] and os.getpid() not in pids.values()
    again = sample_rows(DataLoader(WorkerIdentity(), batch_size=2, num_workers=2, seed=5))
    assert {r[1]: r[3] for r in again} == seeds  # same loader seed: same worker seeds
    next_epoch = sample_rows(loader)
    assert {r[5] for r in next_epoch} == {1} and {r[1]: r[3] for r in next_epoch}[0] != seeds[0]
    assert no_children_left()


def init_records_seed(worker_id):
    info = get_worker_info()
    np.random.seed(info.seed % 2**32)
    os.environ["KINONE_TEST_INIT"] = f"{worker_id}"


class InitVisible(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return int(os.environ.get("KINONE_TEST_INIT", "-1"))


def test_worker_init_fn_runs_in_each_worker():
    batches = list(DataLoader(InitVisible(), batch_size=1, num_workers=2, worker_init_fn=init_records_seed))
    assert [b.item() for b in batches] == [0, 1, 0, 1]
    assert "KINONE_TEST_INIT" not in os.environ


# ------------------------------------------------------------------ errors
def failing_init(worker_id):
    raise OSError(f"cannot open the cache in worker {worker_id}")


def test_an_exception_in_worker_init_fn_is_reraised():
    with pytest.raises(
        OSError, match=r"worker 0 \(pid \d+\) in worker_init_fn(.|\n)*cannot open the cache in worker 0"
    ):
        list(DataLoader(InitVisible(), batch_size=1, num_workers=2, worker_init_fn=failing_init))
    assert no_children_left()


def test_an_exception_in_a_worker_is_reraised_with_its_traceback_and_index():
    loader = DataLoader(Failing(ValueError("corrupt sample")), batch_size=3, num_workers=2)
    with pytest.raises(ValueError) as caught:
        list(loader)
    message = str(caught.value)
    assert "Caught ValueError in DataLoader worker 0" in message  # batch 2 (indices 6-8) is worker 0's
    assert "sample index 7 (batch 2)" in message
    assert "Traceback (most recent call last)" in message and "__getitem__" in message and "corrupt sample" in message
    assert caught.value.sample_index == 7 and caught.value.worker_id == 0
    assert no_children_left() and no_slot_files()


def test_key_errors_keep_a_readable_message_and_odd_exceptions_become_runtime_errors():
    with pytest.raises(KeyError) as caught:
        list(DataLoader(Failing(KeyError("missing key")), batch_size=3, num_workers=1))
    assert "\n" in str(caught.value) and "sample index 7" in str(caught.value)

    class NeedsTwoArguments(Exception):
        def __init__(self, a, b):
            super().__init__(a, b)

    with pytest.raises(RuntimeError, match="Caught NeedsTwoArguments"):
        list(DataLoader(Failing(NeedsTwoArguments(1, 2)), batch_size=3, num_workers=1))
    assert no_children_left()


def test_a_worker_that_dies_is_reported_not_waited_for():
    with pytest.raises(
        RuntimeError,
        match=r"DataLoader: worker 1 \(pid \d+\) exited unexpectedly \(signal SIGKILL\) while loading batch 1",
    ):
        list(DataLoader(Suicidal(), batch_size=4, num_workers=2))
    assert no_children_left() and no_slot_files()


class Exiting(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 5:
            os._exit(3)  # a C extension calling exit(), say
        return i


def test_a_worker_that_exits_is_reported_with_its_exit_code():
    with pytest.raises(RuntimeError, match=r"^DataLoader: worker 1 \(pid \d+\) exited unexpectedly \(exit code 3\)"):
        list(DataLoader(Exiting(), batch_size=4, num_workers=2))
    assert no_children_left() and no_slot_files()


def test_a_worker_killed_from_outside_mid_epoch_is_always_reported_by_signal(monkeypatch):
    """As the OOM killer does: SIGKILL while the main process has requests queued in the worker's
    pipe (their unread bytes make the main side's read fail with ConnectionResetError, not EOF)."""
    monkeypatch.setattr(loader_module, "SHUTDOWN_SECONDS", 0.5)
    for trial in range(10):
        iterator = iter(DataLoader(Sleepy(n=40, seconds=0.002), batch_size=2, num_workers=2))
        next(iterator)
        victim = trial % 2
        pids = [process.pid for process in iterator._workers]
        os.kill(pids[victim], signal.SIGKILL)
        with pytest.raises(RuntimeError) as caught:
            for _ in iterator:
                pass
        assert re.match(
            rf"DataLoader: worker {victim} \(pid {pids[victim]}\) exited unexpectedly \(signal SIGKILL\)",
            str(caught.value),
        ), f"trial {trial}: {type(caught.value).__name__}: {caught.value}"
        assert no_children_left() and not any(alive(pid) for pid in pids) and no_slot_files()


def test_timeout_raises_a_clear_error(monkeypatch):
    monkeypatch.setattr(loader_module, "SHUTDOWN_SECONDS", 0.2)
    loader = DataLoader(
        Sleepy(n=4, seconds=0.0, slow_index=2, slow_seconds=3.0), batch_size=1, num_workers=2, timeout=0.3
    )
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"timed out after 0.3 s waiting for batch 2 from worker 0"):
        list(loader)
    assert time.monotonic() - start < 2.5
    assert no_children_left()


# ------------------------------------------------------------------ no process left behind
def test_early_break_leaves_no_process():
    pids = set()
    for _, pid in DataLoader(Sleepy(n=40, seconds=0.01), batch_size=2, num_workers=2):
        pids.update(pid.tolist())
        break
    assert pids and os.getpid() not in pids
    assert no_children_left() and not any(alive(p) for p in pids) and no_slot_files()


def test_explicit_close_and_abandoned_iterator():
    loader = DataLoader(Sleepy(n=20, seconds=0.01), batch_size=2, num_workers=2)
    iterator = iter(loader)
    next(iterator)
    iterator.close()
    with pytest.raises(StopIteration):
        next(iterator)
    iter(loader)  # created and dropped at once
    assert no_children_left()


def test_keyboard_interrupt_while_waiting_for_a_batch(monkeypatch):
    monkeypatch.setattr(loader_module, "SHUTDOWN_SECONDS", 0.2)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    pids = set()
    with pytest.raises(KeyboardInterrupt):
        timer.start()
        for _, pid in DataLoader(Sleepy(n=40, seconds=0.3), batch_size=1, num_workers=2):
            pids.update(pid.tolist())
    timer.cancel()
    assert no_children_left() and not any(alive(p) for p in pids)


def test_keyboard_interrupt_in_the_loop_body():
    with pytest.raises(KeyboardInterrupt):
        for _ in DataLoader(Sleepy(n=40, seconds=0.01), batch_size=1, num_workers=2):
            raise KeyboardInterrupt
    assert no_children_left()


def test_workers_exit_when_the_main_process_is_killed(tmp_path):
    script = textwrap.dedent(
        """
        import json, os, signal, sys, time
        from kinone.data import DataLoader, Dataset

        class Slow(Dataset):
            def __len__(self):
                return 1000
            def __getitem__(self, i):
                time.sleep(0.05)
                return os.getpid()

        if __name__ == "__main__":
            loader = DataLoader(Slow(), batch_size=1, num_workers=2)
            pids = set()
            for pid in loader:
                pids.add(pid.item())
                if len(pids) == 2:
                    print(json.dumps(sorted(pids)), flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    path = tmp_path / "killed_parent.py"
    path.write_text(script)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    pids = json.loads(done.stdout.strip().splitlines()[-1])
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in pids)


def test_exiting_with_a_live_iterator_leaves_no_process_and_no_shared_memory(tmp_path):
    script = textwrap.dedent(
        """
        import json, os
        import numpy as np
        from kinone.data import DataLoader, Dataset

        class Arrays(Dataset):
            def __len__(self):
                return 1000
            def __getitem__(self, i):
                return np.full((64, 64), i, np.float32), os.getpid()

        if __name__ == "__main__":
            iterator = iter(DataLoader(Arrays(), batch_size=4, num_workers=2))
            pids = {pid for _ in range(4) for pid in next(iterator)[1].tolist()}
            print(json.dumps([os.getpid(), sorted(pids)]), flush=True)
            # exits here with the workers busy and batches in flight
        """
    )
    path = tmp_path / "exits.py"
    path.write_text(script)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    main_pid, pids = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(pids) == 2 and not any(alive(p) for p in pids)
    if os.path.isdir("/dev/shm"):
        assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"kinone-data-{main_pid}-")]
