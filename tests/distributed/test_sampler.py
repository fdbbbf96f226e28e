"""DistributedSampler: PyTorch's semantics exactly (compared with
torch.utils.data.DistributedSampler when torch is installed), its own permutation a pure
function of (seed, epoch), and use by kinone.data's DataLoader."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from kinone.distributed import DistributedSampler

LENGTHS = [0, 1, 2, 3, 5, 7, 10, 11, 16]
REPLICAS = [1, 2, 3, 4, 5]


def _torch_sampler(length, num_replicas, rank, shuffle, seed, drop_last):
    torch_data = pytest.importorskip("torch.utils.data", reason="torch is not installed: no PyTorch reference")
    return torch_data.DistributedSampler(
        range(length), num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
    )


@pytest.mark.parametrize("drop_last", [False, True])
def test_unshuffled_shares_equal_pytorchs(drop_last):
    for length, replicas in itertools.product(LENGTHS, REPLICAS):
        for rank in range(replicas):
            ours = DistributedSampler(length, num_replicas=replicas, rank=rank, shuffle=False, drop_last=drop_last)
            theirs = _torch_sampler(length, replicas, rank, False, 0, drop_last)
            assert list(ours) == list(theirs), (length, replicas, rank)
            assert len(ours) == len(theirs) == ours.num_samples
            assert ours.total_size == theirs.total_size


@pytest.mark.parametrize("drop_last", [False, True])
def test_shuffled_shares_split_a_permutation_as_pytorch_does(drop_last):
    """Given torch's own permutation, our padding and splitting reproduce torch's shares."""
    torch = pytest.importorskip("torch", reason="torch is not installed: no PyTorch reference")

    for length, replicas, epoch in itertools.product(LENGTHS, REPLICAS, [0, 3]):
        permutation = torch.randperm(length, generator=torch.Generator().manual_seed(7 + epoch)).numpy()
        for rank in range(replicas):
            ours = DistributedSampler(
                length, num_replicas=replicas, rank=rank, shuffle=True, seed=7, drop_last=drop_last
            )
            theirs = _torch_sampler(length, replicas, rank, True, 7, drop_last)
            theirs.set_epoch(epoch)
            assert ours.split(permutation).tolist() == list(theirs), (length, replicas, rank, epoch)


def test_padding_repeats_the_head_and_every_rank_gets_the_same_count():
    shares = [list(DistributedSampler(5, num_replicas=3, rank=r, shuffle=False)) for r in range(3)]
    assert shares == [[0, 3], [1, 4], [2, 0]]
    shares = [list(DistributedSampler(2, num_replicas=5, rank=r, shuffle=False)) for r in range(5)]
    assert shares == [[0], [1], [0], [1], [0]]  # padding longer than the dataset repeats it whole
    shares = [list(DistributedSampler(5, num_replicas=3, rank=r, shuffle=False, drop_last=True)) for r in range(3)]
    assert shares == [[0], [1], [2]]


def test_the_order_is_a_pure_function_of_seed_and_epoch():
    def shares(seed, epoch):
        result = []
        for rank in range(3):
            sampler = DistributedSampler(list(range(11)), num_replicas=3, rank=rank, seed=seed)
            sampler.set_epoch(epoch)
            result.append(list(sampler))
        return result

    first = shares(seed=4, epoch=2)
    assert first == shares(seed=4, epoch=2)
    everything = [index for share in first for index in share]
    assert len(everything) == 12 and set(everything) == set(range(11))  # every index, plus one repeat
    assert first != shares(seed=4, epoch=3) and first != shares(seed=5, epoch=2)
    sampler = DistributedSampler(11, num_replicas=3, rank=0, seed=4)
    sampler.set_epoch(2)
    assert list(sampler) == list(sampler) == first[0]  # iterating does not advance the epoch
    state = sampler.state_dict()
    restored = DistributedSampler(11, num_replicas=3, rank=0, seed=0)
    restored.load_state_dict(state)
    assert list(restored) == first[0]


def test_defaults_come_from_the_runtime_and_bad_arguments_are_refused():
    sampler = DistributedSampler(4)
    assert (sampler.num_replicas, sampler.rank, sampler.shuffle, sampler.seed, sampler.drop_last) == (
        1,
        0,
        True,
        0,
        False,
    )
    with pytest.raises(ValueError, match=r"invalid rank 2, rank should be in the interval \[0, 1\]"):
        DistributedSampler(4, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas must be a positive int"):
        DistributedSampler(4, num_replicas=0, rank=0)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        DistributedSampler(4, seed=-1)
    with pytest.raises(TypeError, match="expected a dataset with len"):
        DistributedSampler(object())


def test_a_dataloader_uses_it_and_sets_its_epoch():
    data = pytest.importorskip("kinone.data", reason="kinone-data is not installed")

    class Numbers(data.Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, index):
            return np.array(index, dtype=np.int64)

    sampler = DistributedSampler(Numbers(), num_replicas=2, rank=1, seed=9)
    loader = data.DataLoader(Numbers(), batch_size=2, sampler=sampler)
    assert len(loader) == 3
    for epoch in range(2):
        seen = np.concatenate([batch.numpy() if hasattr(batch, "numpy") else np.asarray(batch) for batch in loader])
        assert seen.tolist() == sampler.split(sampler.permutation(epoch)).tolist()
