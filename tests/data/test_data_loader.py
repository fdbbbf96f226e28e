"""DataLoader semantics in the main process: batching, drop_last, shuffling, collation, seeds
and resuming. (Worker processes: test_data_workers.py.)"""

from __future__ import annotations

import random
from collections import OrderedDict, namedtuple

import numpy as np
import pytest

from kinone.autograd import Tensor, default_generator, manual_seed, rand
from kinone.data import (
    BatchSampler,
    ConcatDataset,
    DataLoader,
    Dataset,
    SequentialSampler,
    Subset,
    TensorDataset,
    default_collate,
    get_worker_info,
    random_split,
)


class Squares(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.full((2, 3), i * i, dtype=np.float32), i


class RandomDraws(Dataset):
    """Each sample: one draw from each generator the loader seeds."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return i, random.random(), float(np.random.rand()), float(rand(1).item())


def collect(loader):
    return [tuple(field.data.copy() for field in batch) for batch in loader]


# ------------------------------------------------------------------ batching
def test_batches_are_tuples_of_tensors_in_order():
    loader = DataLoader(Squares(10), batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and len(batches) == 3
    images, labels = batches[0]
    assert isinstance(batches[0], tuple) and isinstance(images, Tensor) and isinstance(labels, Tensor)
    assert images.shape == (4, 2, 3) and images.dtype == np.float32
    assert labels.dtype == np.int64 and labels.tolist() == [0, 1, 2, 3]
    assert batches[2][1].tolist() == [8, 9]
    assert images.data[3, 0, 0] == 9


@pytest.mark.parametrize(
    "n, batch_size, drop_last, expected", [(10, 4, False, 3), (10, 4, True, 2), (8, 4, True, 2), (3, 4, True, 0)]
)
def test_len_and_drop_last(n, batch_size, drop_last, expected):
    loader = DataLoader(Squares(n), batch_size=batch_size, drop_last=drop_last)
    batches = list(loader)
    assert len(loader) == len(batches) == expected
    assert all(len(b[1]) == batch_size for b in batches[: n // batch_size])


def test_tensor_dataset_subset_concat_and_random_split():
    x, y = np.arange(12, dtype=np.float32).reshape(6, 2), Tensor(np.arange(6))
    data = TensorDataset(x, y)
    row = data[2]
    assert isinstance(row[0], np.ndarray) and isinstance(row[1], Tensor) and row[1].item() == 2
    with pytest.raises(ValueError, match="same first dimension"):
        TensorDataset(x, np.arange(5))
    subset = Subset(data, [5, 0])
    assert len(subset) == 2 and subset[0][1].item() == 5
    both = ConcatDataset([data, subset])
    assert len(both) == 8 and both[7][1].item() == 0 and both[-1][1].item() == 0
    parts = random_split(data, [0.5, 0.5], seed=1)
    assert sorted(parts[0].indices + parts[1].indices) == list(range(6))
    assert parts[0].indices == random_split(data, [3, 3], seed=1)[0].indices
    with pytest.raises(ValueError, match="summing"):
        random_split(data, [2, 2])


def test_argument_errors():
    with pytest.raises(ValueError, match="exclusive"):
        DataLoader(Squares(4), shuffle=True, sampler=SequentialSampler(Squares(4)))
    with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive"):
        DataLoader(Squares(4), batch_size=2, batch_sampler=BatchSampler(SequentialSampler(Squares(4)), 2, False))
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="batch_size"):
            DataLoader(Squares(4), batch_size=bad)
    with pytest.raises(ValueError, match="num_workers"):
        DataLoader(Squares(4), num_workers=-1)
    with pytest.raises(ValueError, match="timeout"):
        DataLoader(Squares(4), timeout=-1)


def test_batch_sampler_argument():
    loader = DataLoader(Squares(5), batch_sampler=[[4, 0], [2]])
    assert [b[1].tolist() for b in loader] == [[4, 0], [2]]


# ------------------------------------------------------------------ collation
def test_collate_dtype_rules():
    batch = default_collate(
        [(1, 0.5, True, np.float64(2.0), np.int32(3)), (2, 1.5, False, np.float64(4.0), np.int32(5))]
    )
    assert [t.dtype for t in batch] == [np.int64, np.float32, np.bool_, np.float64, np.int32]
    assert batch[1].tolist() == [0.5, 1.5]
    mixed = default_collate([1, 2.5])  # ints and floats together: float32
    assert mixed.dtype == np.float32 and mixed.tolist() == [1.0, 2.5]
    arrays = default_collate([np.zeros((2, 2), np.uint8), np.ones((2, 2), np.uint8)])
    assert arrays.dtype == np.uint8 and arrays.shape == (2, 2, 2)
    tensors = default_collate([Tensor(np.ones(3, np.float32)), Tensor(np.zeros(3, np.float32))])
    assert tensors.shape == (2, 3) and tensors.dtype == np.float32


def test_collate_nested_structures():
    Pair = namedtuple("Pair", "image label")
    samples = [
        {
            "image": np.full(2, i, np.float32),
            "meta": {"name": f"img{i}", "pair": Pair(np.zeros(1), i)},
            "list": [i, [i, i]],
        }
        for i in range(3)
    ]
    batch = default_collate(samples)
    assert list(batch) == ["image", "meta", "list"]
    assert batch["image"].shape == (3, 2)
    assert batch["meta"]["name"] == ["img0", "img1", "img2"]
    pair = batch["meta"]["pair"]
    assert isinstance(pair, Pair) and pair.image.shape == (3, 1) and pair.label.tolist() == [0, 1, 2]
    assert isinstance(batch["list"], list) and batch["list"][0].tolist() == [0, 1, 2]
    assert batch["list"][1][1].tolist() == [0, 1, 2]
    ordered = default_collate([OrderedDict(a=1), OrderedDict(a=2)])
    assert isinstance(ordered, OrderedDict) and ordered["a"].tolist() == [1, 2]


def test_collate_errors_name_the_sample():
    with pytest.raises(ValueError, match=r"sample 1 has shape \(3,\), but sample 0 has shape \(2,\)"):
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(ValueError, match="keys"):
        default_collate([{"a": 1}, {"b": 1}])
    with pytest.raises(ValueError, match="same structure"):
        default_collate([(1, 2), (1, 2, 3)])
    from PIL import Image

    with pytest.raises(TypeError, match="ToArray"):
        default_collate([Image.new("L", (2, 2))])
    with pytest.raises(TypeError, match="cannot batch"):
        default_collate([object()])


def test_custom_collate_fn():
    loader = DataLoader(Squares(4), batch_size=2, collate_fn=lambda samples: [s[1] for s in samples])
    assert list(loader) == [[0, 1], [2, 3]]


# ------------------------------------------------------------------ order and seeds
def test_shuffle_is_a_pure_function_of_seed_and_epoch():
    def epochs(loader, n):
        return [[int(i) for b in loader for i in b[1].tolist()] for _ in range(n)]

    a = epochs(DataLoader(Squares(20), batch_size=3, shuffle=True, seed=7), 3)
    b = epochs(DataLoader(Squares(20), batch_size=3, shuffle=True, seed=7), 3)
    assert a == b
    assert all(sorted(e) == list(range(20)) for e in a)
    assert a[0] != a[1] != a[2]
    assert a != epochs(DataLoader(Squares(20), batch_size=3, shuffle=True, seed=8), 3)
    loader = DataLoader(Squares(20), batch_size=3, shuffle=True, seed=7)
    loader.set_epoch(2)
    assert epochs(loader, 1)[0] == a[2]
    assert epochs(DataLoader(Squares(20), batch_size=3), 1)[0] == list(range(20))


def test_seed_none_follows_kinone_manual_seed():
    manual_seed(3)
    first = [b[1].tolist() for b in DataLoader(Squares(10), batch_size=5, shuffle=True)]
    manual_seed(3)
    assert first == [b[1].tolist() for b in DataLoader(Squares(10), batch_size=5, shuffle=True)]


def test_random_draws_are_seeded_per_sample_and_do_not_touch_the_callers_generators():
    random.seed(1)
    np.random.seed(1)
    manual_seed(1)
    before = (random.random(), np.random.rand(), default_generator().random())
    random.seed(1)
    np.random.seed(1)
    generator = manual_seed(1)
    a = collect(DataLoader(RandomDraws(), batch_size=3, seed=5))
    assert default_generator() is generator
    assert (random.random(), np.random.rand(), default_generator().random()) == before  # untouched
    b = collect(DataLoader(RandomDraws(), batch_size=3, seed=5))
    assert all(all(np.array_equal(x, y) for x, y in zip(p, q)) for p, q in zip(a, b))
    draws = np.concatenate([batch[1] for batch in a])
    assert len(set(draws.tolist())) == 10  # every sample draws differently
    c = collect(DataLoader(RandomDraws(), batch_size=3, seed=6))
    assert not np.array_equal(np.concatenate([batch[1] for batch in c]), draws)


def test_state_dict_resumes_mid_epoch_with_the_same_batches():
    def make():
        return DataLoader(RandomDraws(), batch_size=2, shuffle=True, seed=11)

    reference = make()
    next(iter(reference))  # epoch 0
    full = collect(reference)  # epoch 1, 5 batches

    loader = make()
    next(iter(loader))
    iterator = iter(loader)
    done = [tuple(f.data.copy() for f in next(iterator)) for _ in range(2)]
    state = loader.state_dict()
    assert state == {"seed": 11, "epoch": 1, "batches_done": 2}
    del iterator

    resumed = DataLoader(RandomDraws(), batch_size=2, shuffle=True, seed=99)
    resumed.load_state_dict(state)
    assert resumed.seed == 11
    rest = collect(resumed)
    assert len(rest) == 3
    for got, want in zip(done + rest, full):
        assert all(np.array_equal(x, y) for x, y in zip(got, want))
    assert resumed.state_dict() == {"seed": 11, "epoch": 2, "batches_done": 0}
    iterator = iter(resumed)
    for _ in range(len(resumed)):
        next(iterator)
    assert resumed.state_dict() == {"seed": 11, "epoch": 3, "batches_done": 0}  # the last batch taken


def test_get_worker_info_is_none_in_the_main_process():
    assert get_worker_info() is None


def test_errors_in_the_main_process_say_which_sample():
    class Failing(Squares):
        def __getitem__(self, i):
            if i == 5:
                raise ValueError("cannot read sample five")
            return super().__getitem__(i)

    with pytest.raises(ValueError, match="cannot read sample five") as caught:
        list(DataLoader(Failing(8), batch_size=2))
    if hasattr(caught.value, "__notes__"):
        assert "sample index 5 (batch 2)" in caught.value.__notes__[0]
