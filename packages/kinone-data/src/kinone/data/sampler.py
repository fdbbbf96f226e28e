"""Samplers: the order in which a DataLoader visits a dataset's indices (as in PyTorch).

Random samplers are reproducible by construction: the order of epoch `k` is a pure function
of `(seed, k)`, drawn from `numpy.random.default_rng([seed, k])`. Each `iter(sampler)` uses
the sampler's current `epoch` and then advances it by one, so successive epochs differ;
`set_epoch(k)` goes to any epoch directly (the DataLoader calls it, so that a run resumed at
epoch k sees the same order as the uninterrupted run did). A sampler made with `seed=None`
draws its seed once, at construction, from `kinone.autograd`'s default generator: after
`kinone.autograd.manual_seed(s)` the whole pipeline is reproducible, as with
`torch.manual_seed`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from kinone.autograd import default_generator


def draw_seed(generator=None) -> int:
    """A 63-bit seed from `generator` (a `numpy.random.Generator`, what `kinone.autograd`'s
    `manual_seed` and `default_generator` return), or from `kinone.autograd`'s default one."""
    if generator is None:
        generator = default_generator()
    if not callable(getattr(generator, "integers", None)):
        raise TypeError(
            f"generator must be a numpy.random.Generator (Kinone's generators are NumPy's, e.g. "
            f"kinone.autograd.manual_seed(0) or numpy.random.default_rng(0)); got {type(generator).__name__}"
        )
    return int(generator.integers(0, 2**63 - 1))


def seed_of(seed: int | None, generator, who: str) -> int:
    """The seed a sampler or loader uses: `seed` if given, else one drawn from `generator`
    (or from kinone's default generator when both are None)."""
    if seed is not None and generator is not None:
        raise ValueError(f"{who}: pass seed or generator, not both")
    return draw_seed(generator) if seed is None else int(seed)


class Sampler:
    """The base of samplers: `__iter__` yields dataset indices, `__len__` says how many."""

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class _EpochSampler(Sampler):
    """A sampler whose order is a pure function of (seed, epoch); the seed is `seed`, or is
    drawn once, at construction, from `generator` (PyTorch's argument: a generator in a given
    state gives the same orders) or from kinone's default generator."""

    def __init__(self, seed: int | None, generator=None):
        self.seed = seed_of(seed, generator, type(self).__name__)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next `iter(self)` produce the order of epoch `epoch`."""
        self.epoch = int(epoch)

    def order(self, epoch: int) -> np.ndarray:
        """The indices of epoch `epoch`, as an int64 array."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        order = self.order(self.epoch)  # drawn now, not lazily: the epoch advances right away
        self.epoch += 1
        return iter(order.tolist())

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])

    def _rng(self, epoch: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch])


class RandomSampler(_EpochSampler):
    """A random permutation per epoch; with `replacement=True`, `num_samples` draws with replacement.

    Without replacement and `num_samples > len(data_source)`, whole permutations follow each
    other (as in PyTorch).
    """

    def __init__(
        self,
        data_source,
        replacement: bool = False,
        num_samples: int | None = None,
        generator=None,
        *,
        seed: int | None = None,
    ):
        super().__init__(seed, generator)
        self.data_source = data_source
        self.replacement = bool(replacement)
        self._num_samples = num_samples
        if num_samples is not None and (not isinstance(num_samples, int) or num_samples <= 0):
            raise ValueError(f"RandomSampler: num_samples must be a positive int; got {num_samples!r}")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def order(self, epoch: int) -> np.ndarray:
        n, rng = len(self.data_source), self._rng(epoch)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        if self.replacement:
            return rng.integers(0, n, size=self.num_samples, dtype=np.int64)
        rounds = [rng.permutation(n) for _ in range(-(-self.num_samples // n))]
        return np.concatenate(rounds)[: self.num_samples]

    def __len__(self) -> int:
        return self.num_samples


class WeightedRandomSampler(_EpochSampler):
    """`num_samples` indices drawn with probabilities proportional to `weights`."""

    def __init__(
        self,
        weights: Sequence[float],
        num_samples: int,
        replacement: bool = True,
        generator=None,
        *,
        seed: int | None = None,
    ):
        super().__init__(seed, generator)
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 1 or weights.size == 0:
            raise ValueError(
                f"WeightedRandomSampler: weights must be a non-empty 1-D sequence; got shape {weights.shape}"
            )
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError("WeightedRandomSampler: weights must be finite, non-negative and not all zero")
        if not isinstance(num_samples, int) or num_samples <= 0:
            raise ValueError(f"WeightedRandomSampler: num_samples must be a positive int; got {num_samples!r}")
        if not replacement and num_samples > np.count_nonzero(weights):
            raise ValueError(
                f"WeightedRandomSampler: cannot draw {num_samples} samples without replacement "
                f"from {np.count_nonzero(weights)} non-zero weights"
            )
        self.weights = weights
        self.num_samples = num_samples
        self.replacement = bool(replacement)

    def order(self, epoch: int) -> np.ndarray:
        p = self.weights / self.weights.sum()
        return self._rng(epoch).choice(len(p), size=self.num_samples, replace=self.replacement, p=p).astype(np.int64)

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(_EpochSampler):
    """The given indices, in a random order per epoch."""

    def __init__(self, indices: Sequence[int], generator=None, *, seed: int | None = None):
        super().__init__(seed, generator)
        self.indices = np.asarray(indices, dtype=np.int64)

    def order(self, epoch: int) -> np.ndarray:
        return self.indices[self._rng(epoch).permutation(len(self.indices))]

    def __len__(self) -> int:
        return len(self.indices)


class BatchSampler(Sampler):
    """Groups the indices of `sampler` into lists of `batch_size` (the last one shorter unless
    `drop_last`)."""

    def __init__(self, sampler, batch_size: int, drop_last: bool):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"BatchSampler: batch_size must be a positive int; got {batch_size!r}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return -(-len(self.sampler) // self.batch_size)
