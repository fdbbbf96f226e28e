"""A sample's random augmentation is keyed by (seed, epoch, dataset index): the same whichever
batch size, sampler, worker or batch position loads it (what data-parallel training needs: N
ranks at batch B must see the augmentations one process sees at batch N·B)."""

from __future__ import annotations

import random
import sys

import numpy as np
import pytest

from kinone.autograd import rand
from kinone.data import DataLoader, Dataset, SequentialSampler, SubsetRandomSampler, worker
from kinone.data import transforms as T


class Augmented(Dataset):
    """Images with a random crop and flip, plus a draw from each of the three generators."""

    def __init__(self, n=23, size=16):
        self.images = np.random.default_rng(0).integers(0, 256, (n, size, size), dtype=np.uint8)
        self.transform = T.Compose([T.RandomResizedCrop(10), T.RandomHorizontalFlip(), T.ToArray()])

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        draws = np.array([random.random(), np.random.rand(), rand(1).item()])
        return self.transform(self.images[i]), draws, np.int64(i)


def by_index(loader) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    samples = {}
    for images, draws, indices in loader:
        for image, draw, index in zip(images.numpy(), draws.numpy(), indices.numpy()):
            assert int(index) not in samples
            samples[int(index)] = (image, draw)
    return samples


def assert_same_samples(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for index in a:
        np.testing.assert_array_equal(a[index][0], b[index][0], err_msg=f"image of sample {index}")
        np.testing.assert_array_equal(a[index][1], b[index][1], err_msg=f"draws of sample {index}")


def test_a_sample_is_augmented_alike_under_other_batch_sizes_and_samplers():
    data = Augmented()
    reference = by_index(DataLoader(data, batch_size=4, seed=3))
    shuffled = by_index(DataLoader(data, batch_size=7, shuffle=True, seed=3))
    subset = by_index(DataLoader(data, batch_size=2, sampler=SubsetRandomSampler(np.arange(23)[::-1], seed=9), seed=3))
    assert_same_samples(reference, shuffled)
    assert_same_samples(reference, subset)
    images = np.stack([reference[i][0] for i in range(len(data))])
    assert len({image.tobytes() for image in images}) == len(data)  # every sample drew its own crop


@pytest.mark.skipif(sys.platform == "win32", reason="worker processes")
@pytest.mark.parametrize("num_workers", [1, 3])
def test_a_sample_is_augmented_alike_in_any_worker(num_workers):
    data = Augmented()
    reference = by_index(DataLoader(data, batch_size=5, sampler=SequentialSampler(data), seed=3))
    in_workers = by_index(DataLoader(data, batch_size=3, shuffle=True, seed=3, num_workers=num_workers))
    assert_same_samples(reference, in_workers)


def test_two_halves_of_the_data_together_see_what_one_loader_sees():
    """Two loaders over the even and the odd indices (two ranks) augment as one loader does."""
    data = Augmented()
    whole = by_index(DataLoader(data, batch_size=8, shuffle=True, seed=5))
    even = by_index(DataLoader(data, batch_size=4, sampler=SubsetRandomSampler(range(0, 23, 2), seed=1), seed=5))
    odd = by_index(DataLoader(data, batch_size=4, sampler=SubsetRandomSampler(range(1, 23, 2), seed=2), seed=5))
    assert_same_samples(whole, {**even, **odd})


def test_the_augmentation_changes_with_the_epoch_and_the_seed():
    data = Augmented()
    loader = DataLoader(data, batch_size=6, seed=3)
    first, second = by_index(loader), by_index(loader)
    other_seed = by_index(DataLoader(data, batch_size=6, seed=4))
    for other in (second, other_seed):
        assert sum(np.array_equal(first[i][1], other[i][1]) for i in first) == 0


def test_the_seed_words_are_a_function_of_seed_epoch_and_index_only():
    def words(seed, epoch, index):
        return tuple(worker.sample_seed_words(seed, epoch, index).tolist())

    assert words(1, 2, 3) == words(1, 2, np.int64(3))
    assert len({words(1, 2, 3), words(1, 2, 4), words(1, 3, 3), words(2, 2, 3)}) == 4
    assert words(0, 0, "a-key") == words(0, 0, "a-key") != words(0, 0, "b-key")


def test_seeding_a_sample_sets_all_three_generators():
    worker.seed_sample(4, 1, 7)
    first = (random.random(), np.random.rand(), rand(1).item())
    worker.seed_sample(4, 1, 8)
    other = (random.random(), np.random.rand(), rand(1).item())
    worker.seed_sample(4, 1, 7)
    assert (random.random(), np.random.rand(), rand(1).item()) == first
    assert all(a != b for a, b in zip(first, other))
