"""`DistributedSampler`: each rank's share of a dataset, PyTorch's semantics.

Every rank draws the same permutation of the whole dataset, pads it (or cuts it) to a
multiple of the number of replicas, and takes every `num_replicas`-th index starting at its
rank, so every rank gets the same number of samples (and so of batches: a rank with one batch
fewer would leave the others waiting in their last allreduce). As in
`torch.utils.data.DistributedSampler`:

- without `drop_last`: `num_samples = ceil(N / R)`, padded with the first indices of the
  permutation (repeated whole if the padding is longer than the dataset);
- with `drop_last` (and N not a multiple of R): `num_samples = ceil((N - R) / R)`, the tail cut;
- `set_epoch(e)` before each epoch; iterating does not advance the epoch.

One difference: the permutation comes from `numpy.random.default_rng([seed, epoch])`, as
kinone.data's samplers, instead of torch's `randperm` under `manual_seed(seed + epoch)`
(which NumPy cannot reproduce). The order is a pure function of (seed, epoch): the same on
every rank, the same after a resume.

A sampler for `kinone.data.DataLoader(sampler=...)`: iterable of int indices, `len()`, and
`set_epoch` (the loader calls it at the start of each epoch).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from .runtime import rank as current_rank
from .runtime import world_size


class DistributedSampler:
    """Indices of `dataset_or_length` (a dataset, or its length) for one of `num_replicas` ranks.

    `num_replicas` and `rank` default to `world_size()` and `rank()`; `seed` must be the same
    on every rank.
    """

    def __init__(
        self,
        dataset_or_length,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ):
        num_replicas = world_size() if num_replicas is None else num_replicas
        rank = current_rank() if rank is None else rank
        if isinstance(num_replicas, bool) or not isinstance(num_replicas, int) or num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be a positive int, got {num_replicas!r}")
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < num_replicas:
            raise ValueError(
                f"DistributedSampler: invalid rank {rank!r}, rank should be in the interval [0, {num_replicas - 1}]"
            )
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"DistributedSampler: seed must be a non-negative int, got {seed!r}")
        self.length = _length_of(dataset_or_length)
        self.num_replicas, self.rank = num_replicas, rank
        self.shuffle, self.seed, self.drop_last = bool(shuffle), seed, bool(drop_last)
        self.epoch = 0
        if self.drop_last and self.length % num_replicas != 0:
            self.num_samples = math.ceil((self.length - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(self.length / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration produce epoch `epoch`'s order (call before each epoch)."""
        self.epoch = int(epoch)

    def permutation(self, epoch: int) -> np.ndarray:
        """The whole dataset's order in `epoch`, before padding and splitting (int64)."""
        if not self.shuffle:
            return np.arange(self.length, dtype=np.int64)
        return np.random.default_rng([self.seed, epoch]).permutation(self.length).astype(np.int64)

    def split(self, order: np.ndarray) -> np.ndarray:
        """This rank's share of `order`: padded or cut to `total_size`, then every
        `num_replicas`-th index from `rank` (PyTorch's steps, on any given order)."""
        order = np.asarray(order, dtype=np.int64)
        if self.drop_last:
            order = order[: self.total_size]
        else:
            padding = self.total_size - len(order)
            if padding > 0:
                order = np.concatenate([order, np.resize(order, padding)])
        if len(order) != self.total_size:
            raise RuntimeError(f"DistributedSampler: expected {self.total_size} indices, got {len(order)}")
        return order[self.rank : self.total_size : self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.split(self.permutation(self.epoch)).tolist())

    def __len__(self) -> int:
        return self.num_samples

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])


def _length_of(dataset_or_length) -> int:
    if isinstance(dataset_or_length, (int, np.integer)) and not isinstance(dataset_or_length, bool):
        length = int(dataset_or_length)
    else:
        try:
            length = len(dataset_or_length)
        except TypeError:
            raise TypeError(
                f"DistributedSampler: expected a dataset with len() or a length, got {type(dataset_or_length).__name__}"
            ) from None
    if length < 0:
        raise ValueError(f"DistributedSampler: the dataset length must be >= 0, got {length}")
    return length
