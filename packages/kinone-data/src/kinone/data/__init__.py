"""kinone.data: datasets, samplers, a multi-process DataLoader and image transforms.

    >>> import numpy as np
    >>> from kinone.data import DataLoader, TensorDataset
    >>> data = TensorDataset(np.arange(10, dtype=np.float32).reshape(5, 2), np.arange(5))
    >>> x, y = next(iter(DataLoader(data, batch_size=4)))
    >>> x.shape, y.dtype
    ((4, 2), dtype('int64'))

`kinone.data.transforms` holds the image transforms and `kinone.data.datasets` the NIH
ChestX-ray14 dataset (`NIHChestXray`, `make_sample`); import them by name.
"""

from .__about__ import __version__
from .collate import default_collate, default_convert
from .dataset import (
    ChainDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    Subset,
    TensorDataset,
    random_split,
)
from .loader import DataLoader
from .sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)
from .worker import WorkerInfo, get_worker_info

__all__ = [
    "BatchSampler",
    "ChainDataset",
    "ConcatDataset",
    "DataLoader",
    "Dataset",
    "IterableDataset",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "Subset",
    "SubsetRandomSampler",
    "TensorDataset",
    "WeightedRandomSampler",
    "WorkerInfo",
    "__version__",
    "default_collate",
    "default_convert",
    "get_worker_info",
    "random_split",
]
