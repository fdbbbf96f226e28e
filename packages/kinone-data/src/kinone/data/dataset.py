"""Datasets as in `torch.utils.data`: `Dataset`, `IterableDataset`, `TensorDataset`, `Subset`,
`ConcatDataset`, `ChainDataset`, `random_split`.

A map-style dataset is anything with `__getitem__(index)` and `__len__()`: the DataLoader asks
it for samples by integer index, in whatever order the sampler chooses, possibly from several
worker processes at once (so `__getitem__` must not depend on the order of earlier calls).

An iterable dataset (`IterableDataset`) is a stream: the DataLoader takes its samples from
`iter(dataset)` in order, and each worker process iterates its own copy, so a dataset that
should not be read twice splits its stream with `get_worker_info()` (as in PyTorch):

    class Lines(IterableDataset):
        def __iter__(self):
            info = get_worker_info()
            worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
            return itertools.islice(open(self.path), worker, None, workers)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

from kinone.autograd import Tensor

from .sampler import draw_seed


class Dataset:
    """The base of map-style datasets: subclasses define `__getitem__` and `__len__`."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index)")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """The base of iterable (stream) datasets: subclasses define `__iter__` (see the module
    docstring); `len()` is optional. `a + b` chains two of them."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__()")

    def __add__(self, other) -> ChainDataset:
        return ChainDataset([self, other])


class ChainDataset(IterableDataset):
    """The samples of several iterable datasets one after the other."""

    def __init__(self, datasets):
        self.datasets = list(datasets)

    def __iter__(self):
        for dataset in self.datasets:
            if not isinstance(dataset, IterableDataset):
                raise TypeError(f"ChainDataset: only IterableDatasets can be chained; got {type(dataset).__name__}")
            yield from dataset

    def __len__(self) -> int:
        return sum(len(dataset) for dataset in self.datasets)


class TensorDataset(Dataset):
    """Samples are the `index`-th rows of each of the given arrays or Tensors.

    Rows keep the type they came in: `TensorDataset(x_array, y_tensor)[0]` is
    `(x_array[0], Tensor(y_tensor.data[0]))` (rows of Tensors share memory with the Tensor,
    outside any graph).
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: expected at least one array or Tensor")
        lengths = [len(t) for t in tensors]
        if len(set(lengths)) != 1:
            raise ValueError(f"TensorDataset: all arrays must have the same first dimension; got sizes {lengths}")
        self.tensors = tensors
        self._arrays = [t.data if isinstance(t, Tensor) else np.asarray(t) for t in tensors]
        self._is_tensor = [isinstance(t, Tensor) for t in tensors]

    def __getitem__(self, index):
        return tuple(
            Tensor(array[index]) if is_tensor else array[index]
            for array, is_tensor in zip(self._arrays, self._is_tensor)
        )

    def __len__(self) -> int:
        return len(self._arrays[0])


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = list(indices)

    def __getitem__(self, index):
        if isinstance(index, list):
            return self.dataset[[self.indices[i] for i in index]]
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """The samples of several datasets one after the other."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: expected at least one dataset")
        for dataset in self.datasets:
            if isinstance(dataset, IterableDataset):
                raise TypeError("ConcatDataset: an IterableDataset cannot be concatenated (use ChainDataset)")
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index):
        if index < 0:
            if -index > len(self):
                raise IndexError(f"ConcatDataset: index {index} out of range for length {len(self)}")
            index += len(self)
        which = int(np.searchsorted(self.cumulative_sizes, index, side="right"))
        if which == len(self.datasets):
            raise IndexError(f"ConcatDataset: index {index} out of range for length {len(self)}")
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][index - start]


def random_split(dataset, lengths: Sequence[float], generator=None, *, seed: int | None = None) -> list[Subset]:
    """Split `dataset` into non-overlapping random subsets of the given lengths (as PyTorch).

    `lengths` are counts summing to `len(dataset)`, or fractions summing to 1 (counts are then
    `floor(fraction * n)`, the remainder dealt one by one round-robin, as in PyTorch). The
    permutation is drawn from `numpy.random.default_rng(seed)` where `seed` is given, else from
    a seed drawn from `generator` (a `numpy.random.Generator`), else from kinone's default
    generator (so `kinone.autograd.manual_seed` fixes it, as `torch.manual_seed` does).
    """
    n = len(dataset)
    lengths = list(lengths)
    if lengths and math.isclose(sum(lengths), 1.0) and sum(lengths) <= 1:
        for i, fraction in enumerate(lengths):
            if not 0 <= fraction <= 1:
                raise ValueError(f"random_split: fraction at index {i} is not between 0 and 1; got {fraction}")
        counts = [math.floor(n * fraction) for fraction in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if not all(isinstance(x, numbers.Integral) and x >= 0 for x in lengths) or sum(lengths) != n:
        raise ValueError(
            f"random_split: lengths must be non-negative counts summing to the dataset's length {n}, "
            f"or fractions summing to 1; got {lengths}"
        )
    if seed is not None and generator is not None:
        raise ValueError("random_split: pass seed or generator, not both")
    order = np.random.default_rng(draw_seed(generator) if seed is None else seed).permutation(n).tolist()
    subsets, start = [], 0
    for length in lengths:
        subsets.append(Subset(dataset, order[start : start + length]))
        start += length
    return subsets
