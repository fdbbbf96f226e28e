"""The DataLoader's PyTorch arguments (pin_memory, persistent_workers, prefetch_factor,
generator, batch_size=None, in_order), IterableDataset, random_split's generator and
default_convert: torch's semantics and errors, checked against torch where it is installed."""

from __future__ import annotations

import functools
import gc
import itertools
import os
import sys
import weakref

import numpy as np
import pytest

from kinone.autograd import Tensor, manual_seed
from kinone.data import (
    ChainDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    default_convert,
    get_worker_info,
    random_split,
)

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process checks")


class Noisy(Dataset):
    """A sample with a random draw, to see that augmentations are kept."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return np.full(2, i, np.float32) + np.float32(np.random.rand()), i


class WhoLoads(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        info = get_worker_info()
        return i, os.getpid(), info.seed % 2**62, info.epoch, _INIT_CALLS


class Stream(IterableDataset):
    """0..n-1, split between workers by get_worker_info() as PyTorch's docs show."""

    def __init__(self, n=10, with_len=True):
        self.n, self.with_len = n, with_len

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        for i in range(worker, self.n, workers):
            yield np.float32(i) + np.float32(np.random.rand()) * 0, i

    def __len__(self):
        if not self.with_len:
            raise TypeError("no len")
        return self.n


_INIT_CALLS = 0


def _count_init(path, worker_id):
    global _INIT_CALLS
    _INIT_CALLS += 1
    with open(path, "a") as f:
        f.write(f"{worker_id} {os.getpid()}\n")


def values(loader, epochs=1):
    return [
        [tuple(np.asarray(f.data if isinstance(f, Tensor) else f).tolist() for f in batch) for batch in loader]
        for _ in range(epochs)
    ]


# ------------------------------------------------------------------ arguments and errors
BAD_ARGUMENTS = {
    "prefetch_factor without workers": {"prefetch_factor": 2},
    "persistent_workers without workers": {"persistent_workers": True},
    "negative num_workers": {"num_workers": -1},
    "negative timeout": {"timeout": -1},
    "sampler and shuffle": {"shuffle": True, "sampler": [0, 1]},
    "batch_sampler and batch_size": {"batch_size": 2, "batch_sampler": [[0, 1]]},
    "batch_sampler and drop_last": {"batch_sampler": [[0, 1]], "drop_last": True},
    "batch_size=None and drop_last": {"batch_size": None, "drop_last": True},
}


@pytest.mark.parametrize("name", list(BAD_ARGUMENTS))
def test_argument_errors_as_pytorch(name):
    with pytest.raises(ValueError, match="DataLoader"):
        DataLoader(Noisy(), **BAD_ARGUMENTS[name])


@pytest.mark.parametrize("name", list(BAD_ARGUMENTS))
def test_pytorch_rejects_the_same_arguments(name):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError):
        torch.utils.data.DataLoader(list(range(10)), **BAD_ARGUMENTS[name])


@pytest.mark.parametrize("option", [{"shuffle": True}, {"sampler": [0]}, {"batch_sampler": [[0]]}])
def test_an_iterable_dataset_takes_no_order(option):
    name = next(iter(option))
    with pytest.raises(ValueError, match=f"IterableDataset: expected unspecified {name}"):
        DataLoader(Stream(), **option)
    torch = pytest.importorskip("torch")

    class TorchStream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(range(3))

    with pytest.raises(ValueError, match=f"expected unspecified {name}"):
        torch.utils.data.DataLoader(TorchStream(), **option)


def test_positional_arguments_are_pytorchs():
    loader = DataLoader(Noisy(), 4, False, None, None, 0, None, True, True)
    assert (loader.batch_size, loader.pin_memory, loader.drop_last, len(loader)) == (
        4,
        True,
        True,
        2,
    )
    assert loader.prefetch_factor is None
    assert DataLoader(Noisy(), num_workers=2).prefetch_factor == 2


def test_pin_memory_on_the_cpu_changes_nothing():
    plain = DataLoader(Noisy(), batch_size=3, shuffle=True, seed=1)
    pinned = DataLoader(
        Noisy(),
        batch_size=3,
        shuffle=True,
        seed=1,
        pin_memory=True,
        pin_memory_device="cuda",
        in_order=False,
    )
    assert pinned.pin_memory and values(pinned) == values(plain)
    assert all(isinstance(x, Tensor) and x.device.type == "cpu" for x, _ in pinned)


# ------------------------------------------------------------------ generator
def test_generator_seeds_the_shuffling_as_a_seed_does():
    def order(generator):
        return values(
            DataLoader(Noisy(), batch_size=4, shuffle=True, generator=generator),
            epochs=2,
        )

    assert order(np.random.default_rng(5)) == order(np.random.default_rng(5))
    assert order(np.random.default_rng(5)) != order(np.random.default_rng(6))
    generator = np.random.default_rng(5)
    first, second = (
        order(generator),
        order(generator),
    )  # the generator moved on, as torch's does
    assert first != second
    with pytest.raises(ValueError, match="seed or generator, not both"):
        DataLoader(Noisy(), shuffle=True, generator=np.random.default_rng(0), seed=1)
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        DataLoader(Noisy(), shuffle=True, generator=object())


@posix_only
def test_generator_seeds_the_workers():
    def seeds(generator):
        loader = DataLoader(WhoLoads(), batch_size=2, num_workers=2, generator=generator)
        return sorted({seed for batch in values(loader)[0] for seed in batch[2]})

    assert seeds(np.random.default_rng(3)) == seeds(np.random.default_rng(3))
    assert seeds(np.random.default_rng(3)) != seeds(np.random.default_rng(4))


def test_samplers_and_random_split_take_a_generator():
    for make in (
        lambda g: RandomSampler(range(20), generator=g),
        lambda g: SubsetRandomSampler(range(20), generator=g),
        lambda g: WeightedRandomSampler(np.ones(20), 20, generator=g),
    ):
        assert list(make(np.random.default_rng(1))) == list(make(np.random.default_rng(1)))
        assert list(make(np.random.default_rng(1))) != list(make(np.random.default_rng(2)))
    split = [s.indices for s in random_split(range(20), [0.5, 0.5], generator=np.random.default_rng(7))]
    assert split == [s.indices for s in random_split(range(20), [10, 10], generator=np.random.default_rng(7))]
    assert sorted(split[0] + split[1]) == list(range(20))
    manual_seed(3)
    a = random_split(range(20), [5, 15])[0].indices
    manual_seed(3)
    assert random_split(range(20), [5, 15])[0].indices == a
    with pytest.raises(ValueError, match="between 0 and 1"):
        random_split(range(20), [1.5, -0.5])


@pytest.mark.parametrize(
    "n, fractions",
    [(10, [0.3, 0.3, 0.4]), (7, [0.5, 0.5]), (11, [0.1, 0.2, 0.7]), (5, [1.0])],
)
def test_random_split_fraction_sizes_match_pytorch(n, fractions):
    torch = pytest.importorskip("torch")
    expected = [len(s) for s in torch.utils.data.random_split(range(n), fractions)]
    assert [len(s) for s in random_split(range(n), fractions, seed=0)] == expected


# ------------------------------------------------------------------ persistent workers
@posix_only
def test_persistent_workers_live_across_epochs_and_give_the_same_batches(tmp_path):
    log = tmp_path / "init.txt"
    init = functools.partial(_count_init, str(log))
    persistent = DataLoader(
        WhoLoads(),
        batch_size=3,
        shuffle=True,
        seed=2,
        num_workers=2,
        persistent_workers=True,
        worker_init_fn=init,
    )
    epochs = [values(persistent)[0] for _ in range(3)]
    pids = [{row for batch in epoch for row in batch[1]} for epoch in epochs]
    assert pids[0] == pids[1] == pids[2] and len(pids[0]) == 2
    assert [{row for batch in epoch for row in batch[3]} for epoch in epochs] == [
        {0},
        {1},
        {2},
    ]  # info.epoch moves on
    assert {row for epoch in epochs for batch in epoch for row in batch[4]} == {1}  # worker_init_fn ran once
    assert len(log.read_text().splitlines()) == 2

    fresh = DataLoader(
        WhoLoads(),
        batch_size=3,
        shuffle=True,
        seed=2,
        num_workers=2,
        worker_init_fn=init,
    )
    fresh_epochs = [values(fresh)[0] for _ in range(3)]
    assert [[b[0] for b in e] for e in fresh_epochs] == [[b[0] for b in e] for e in epochs]  # same order
    assert len({row for epoch in fresh_epochs for batch in epoch for row in batch[1]}) == 6  # 2 new workers an epoch


@posix_only
@pytest.mark.parametrize("num_workers", [1, 2])
def test_persistent_workers_keep_the_augmentations_and_survive_a_break(num_workers):
    reference = values(DataLoader(Noisy(), batch_size=2, shuffle=True, seed=4), epochs=3)
    loader = DataLoader(
        Noisy(),
        batch_size=2,
        shuffle=True,
        seed=4,
        num_workers=num_workers,
        persistent_workers=True,
        prefetch_factor=3,
    )
    first = values(loader)[0]
    for _ in itertools.islice(loader, 2):  # epoch 1 left early: its requests in flight are dropped
        pass
    third = values(loader)[0]
    assert first == reference[0] and third == reference[2]
    pool = weakref.ref(loader._pool)
    workers = list(pool().workers)
    del loader
    gc.collect()
    assert pool() is None  # the loader owned it: its finalizer has stopped the workers
    for process in workers:
        process.join(5)
        assert process.exitcode is not None


# ------------------------------------------------------------------ batch_size=None
@pytest.mark.parametrize("num_workers", [0, 2])
def test_batch_size_none_gives_converted_samples(num_workers):
    if num_workers and sys.platform == "win32":
        pytest.skip("POSIX")
    loader = DataLoader(
        TensorDataset(np.arange(6, dtype=np.float32).reshape(3, 2), np.arange(3)),
        batch_size=None,
        num_workers=num_workers,
    )
    items = list(loader)
    assert len(loader) == 3 and len(items) == 3
    x, y = items[2]
    assert isinstance(x, Tensor) and x.shape == (2,) and x.numpy().tolist() == [4.0, 5.0]
    assert isinstance(y, Tensor) and y.shape == () and int(y.item()) == 2


def test_default_convert_as_pytorch():
    out = default_convert({"a": np.ones((2, 2), np.float32), "b": [np.int64(3), 1.5, "s"]})
    assert isinstance(out["a"], Tensor) and out["a"].shape == (2, 2)
    assert isinstance(out["b"][0], Tensor) and out["b"][0].dtype == np.int64
    assert out["b"][1:] == [1.5, "s"]


# ------------------------------------------------------------------ IterableDataset
def test_an_iterable_dataset_in_the_main_process():
    loader = DataLoader(Stream(10), batch_size=4)
    assert len(loader) == 3
    assert [b[1].tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [b[1].tolist() for b in DataLoader(Stream(10), batch_size=4, drop_last=True)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [b[1] for b in DataLoader(Stream(3), batch_size=None)] == [
        0,
        1,
        2,
    ]  # ints stay ints, as torch
    with pytest.raises(TypeError):
        len(DataLoader(Stream(3, with_len=False)))
    chained = DataLoader(Stream(3) + Stream(2), batch_size=2)
    assert isinstance(Stream(1) + Stream(1), ChainDataset)
    assert [b[1].tolist() for b in chained] == [[0, 1], [2, 0], [1]]


@posix_only
@pytest.mark.parametrize("drop_last", [False, True])
def test_an_iterable_dataset_in_workers_interleaves_as_pytorch(drop_last):
    ours = [b[1].tolist() for b in DataLoader(Stream(11), batch_size=2, num_workers=2, drop_last=drop_last)]
    expected = (
        [[0, 2], [1, 3], [4, 6], [5, 7], [8, 10], [9]] if not drop_last else [[0, 2], [1, 3], [4, 6], [5, 7], [8, 10]]
    )
    assert ours == expected
    torch = pytest.importorskip("torch")

    class TorchStream(torch.utils.data.IterableDataset):
        def __iter__(self):
            info = torch.utils.data.get_worker_info()
            return iter(range(info.id, 11, info.num_workers))

    theirs = [
        b.tolist() for b in torch.utils.data.DataLoader(TorchStream(), batch_size=2, num_workers=2, drop_last=drop_last)
    ]
    assert theirs == expected


@posix_only
def test_an_iterable_dataset_with_persistent_workers_and_a_resume():
    loader = DataLoader(Stream(9), batch_size=2, num_workers=2, persistent_workers=True)
    assert values(loader, epochs=2)[0] == values(loader, epochs=2)[1]
    iterator = iter(loader)
    next(iterator)
    state = loader.state_dict()
    rest = [b[1].tolist() for b in iterator]
    resumed = DataLoader(Stream(9), batch_size=2, num_workers=2)
    resumed.load_state_dict(state)
    assert [b[1].tolist() for b in resumed] == rest


def test_an_error_in_a_stream_names_where():
    class Broken(IterableDataset):
        def __iter__(self):
            yield 1
            raise KeyError("bad line")

    with pytest.raises(KeyError, match="bad line"):
        list(DataLoader(Broken(), batch_size=4))
