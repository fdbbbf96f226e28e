"""Samplers: orders, lengths, seeds, epochs and their state."""

from __future__ import annotations

import numpy as np
import pytest

from kinone.autograd import manual_seed
from kinone.data import BatchSampler, RandomSampler, SequentialSampler, SubsetRandomSampler, WeightedRandomSampler

DATA = list(range(10))


def test_sequential():
    assert list(SequentialSampler(DATA)) == DATA and len(SequentialSampler(DATA)) == 10


def test_random_sampler_is_a_permutation_per_epoch_fixed_by_seed_and_epoch():
    sampler = RandomSampler(DATA, seed=4)
    epochs = [list(sampler) for _ in range(3)]
    assert all(sorted(e) == DATA for e in epochs) and epochs[0] != epochs[1]
    assert sampler.epoch == 3
    again = RandomSampler(DATA, seed=4)
    again.set_epoch(1)
    assert list(again) == epochs[1]
    assert np.array_equal(again.order(2), epochs[2])
    assert list(RandomSampler(DATA, seed=5)) != epochs[0]


def test_random_sampler_replacement_and_num_samples():
    with_replacement = list(RandomSampler(DATA, replacement=True, num_samples=50, seed=0))
    assert len(with_replacement) == 50 and set(with_replacement) <= set(DATA)
    assert len(set(with_replacement[:10])) < 10  # repeats: drawn with replacement
    long = list(RandomSampler(DATA, num_samples=25, seed=0))
    assert len(long) == 25 and sorted(long[:10]) == DATA and sorted(long[10:20]) == DATA
    assert len(RandomSampler(DATA, num_samples=25)) == 25
    with pytest.raises(ValueError, match="num_samples"):
        RandomSampler(DATA, num_samples=0)


def test_random_sampler_without_seed_follows_manual_seed():
    manual_seed(1)
    a = list(RandomSampler(DATA))
    manual_seed(1)
    assert list(RandomSampler(DATA)) == a


def test_sampler_state_dict_round_trip():
    sampler = RandomSampler(DATA, seed=9)
    list(sampler)
    state = sampler.state_dict()
    assert state == {"seed": 9, "epoch": 1}
    other = RandomSampler(DATA, seed=0)
    other.load_state_dict(state)
    assert list(other) == list(sampler)


def test_weighted_random_sampler_follows_the_weights():
    weights = [0.0, 1.0, 3.0]
    draws = np.array(list(WeightedRandomSampler(weights, num_samples=4000, seed=0)))
    assert set(draws.tolist()) == {1, 2}
    assert abs((draws == 2).mean() - 0.75) < 0.03
    sampler = WeightedRandomSampler(weights, num_samples=2, replacement=False, seed=0)
    assert sorted(sampler) == [1, 2] and len(sampler) == 2
    assert list(WeightedRandomSampler(weights, 5, seed=3)) == list(WeightedRandomSampler(weights, 5, seed=3))
    for bad, match in [([], "non-empty"), ([-1.0, 2.0], "non-negative"), ([0.0, 0.0], "not all zero")]:
        with pytest.raises(ValueError, match=match):
            WeightedRandomSampler(bad, 2)
    with pytest.raises(ValueError, match="without replacement"):
        WeightedRandomSampler(weights, 3, replacement=False)


def test_subset_random_sampler():
    sampler = SubsetRandomSampler([3, 5, 7], seed=0)
    assert sorted(sampler) == [3, 5, 7] and len(sampler) == 3


def test_batch_sampler():
    assert list(BatchSampler(SequentialSampler(DATA), 4, drop_last=False)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert list(BatchSampler(SequentialSampler(DATA), 4, drop_last=True)) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(BatchSampler(SequentialSampler(DATA), 4, False)) == 3 and len(BatchSampler(DATA, 4, True)) == 2
    batches = BatchSampler(RandomSampler(DATA, seed=1), 3, False)
    batches.set_epoch(2)
    flat = [i for b in batches for i in b]
    assert flat == RandomSampler(DATA, seed=1).order(2).tolist()
    with pytest.raises(ValueError, match="batch_size"):
        BatchSampler(DATA, 0, False)
