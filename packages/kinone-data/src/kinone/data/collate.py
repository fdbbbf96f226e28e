"""`default_collate`: turn a list of samples into one batch.

Rules (PyTorch's, with Kinone's dtype rules):

| field of each sample | becomes |
| --- | --- |
| `numpy.ndarray` or `Tensor` of one shape | a `Tensor` stacked along a new first axis, dtype kept |
| NumPy scalar (`np.float32(1)`, ...) | a 1-D `Tensor` of that dtype |
| Python `int` / `float` / `bool` | a 1-D `Tensor` of int64 / float32 / bool |
| `str` / `bytes` | the list of them |
| tuple, list, namedtuple, dict | the same container of collated fields |

Tuples stay tuples (PyTorch turns them into lists), so `images, labels = batch` reads the same
either way. Collation happens in two steps: `collate_arrays` builds the batch with NumPy
arrays as leaves (worker processes run this step and write the arrays straight into shared
memory, through `allocate`), and `to_tensors` wraps the arrays in Tensors, without copying,
in the main process. `default_convert` is the collate function of a loader that does not
batch (`batch_size=None`): arrays and NumPy scalars become Tensors, nothing is stacked.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping

import numpy as np

from kinone.autograd import Tensor

Allocate = Callable[[tuple, np.dtype], np.ndarray]


def default_convert(data):
    """`data` with every `numpy.ndarray` and NumPy scalar turned into a `Tensor` (containers
    rebuilt, anything else as it is): the DataLoader's collate function when `batch_size=None`
    turns auto-batching off, as `torch.utils.data.default_convert`."""
    return to_tensors(convert_arrays(data))


def convert_arrays(data):
    """`default_convert` with `numpy.ndarray` leaves: NumPy scalars become 0-d arrays."""
    if isinstance(data, np.generic) and data.dtype.kind in "biufc":
        return np.asarray(data)
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(convert_arrays(d) for d in data))
    if isinstance(data, (tuple, list)):
        return type(data)(convert_arrays(d) for d in data)
    if isinstance(data, Mapping):
        fields = {key: convert_arrays(value) for key, value in data.items()}
        return fields if type(data) is dict else _rebuild_mapping(data, fields)
    return data


def default_collate(batch: list):
    """Stack a list of samples into a batch of `Tensor`s (see the module docstring)."""
    return to_tensors(collate_arrays(batch))


def collate_arrays(batch: list, allocate: Allocate | None = None, _path: str = "sample"):
    """`default_collate` with `numpy.ndarray` leaves instead of Tensors.

    `allocate(shape, dtype)` returns the array each stacked leaf is written into (a fresh
    `np.empty` by default; a region of shared memory in a worker process).
    """
    if not isinstance(batch, (list, tuple)) or not batch:
        raise TypeError(f"default_collate: expected a non-empty list of samples; got {type(batch).__name__}")
    elem = batch[0]
    if isinstance(elem, (np.ndarray, Tensor)):
        return _stack([s.data if isinstance(s, Tensor) else s for s in batch], allocate, _path)
    if isinstance(elem, np.generic):
        return _stack([np.asarray(s) for s in batch], allocate, _path)
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, numbers.Real):  # Python bool, int, float
        return _from_scalars(batch, allocate, _path)
    if isinstance(elem, Mapping):
        keys = list(elem)
        for position, sample in enumerate(batch):
            if not isinstance(sample, Mapping) or list(sample) != keys:
                raise ValueError(
                    f"default_collate: {_path} {position} has keys {_keys(sample)}, but {_path} 0 has {keys}"
                )
        fields = {key: collate_arrays([s[key] for s in batch], allocate, f"{_path}[{key!r}] of sample") for key in keys}
        return fields if type(elem) is dict else _rebuild_mapping(elem, fields)
    if isinstance(elem, (tuple, list)):
        for position, sample in enumerate(batch):
            if type(sample) is not type(elem) or len(sample) != len(elem):
                raise ValueError(
                    f"default_collate: every sample must have the same structure; {_path} {position} is a "
                    f"{type(sample).__name__} of length {_length(sample)}, {_path} 0 a {type(elem).__name__} "
                    f"of length {len(elem)}"
                )
        fields = [
            collate_arrays(list(column), allocate, f"field {i} of sample") for i, column in enumerate(zip(*batch))
        ]
        if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
            return type(elem)(*fields)
        return type(elem)(fields)
    hint = " (add transforms.ToArray() to the dataset's transform)" if type(elem).__module__.startswith("PIL") else ""
    raise TypeError(
        f"default_collate: cannot batch a {type(elem).__module__}.{type(elem).__qualname__} ({_path} 0){hint}; "
        "samples must be NumPy arrays, Tensors, numbers, strings, or tuples/lists/dicts of those"
    )


def to_tensors(batch):
    """Replace every `numpy.ndarray` in a collated batch by a `Tensor` wrapping it (no copy)."""
    if isinstance(batch, np.ndarray):
        return Tensor(batch)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(to_tensors(b) for b in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_tensors(b) for b in batch)
    if isinstance(batch, Mapping):
        fields = {key: to_tensors(value) for key, value in batch.items()}
        return fields if type(batch) is dict else _rebuild_mapping(batch, fields)
    return batch


def _stack(arrays: list, allocate: Allocate | None, path: str) -> np.ndarray:
    shape = arrays[0].shape
    for position, array in enumerate(arrays):
        if array.shape != shape:
            raise ValueError(
                f"default_collate: {path} {position} has shape {array.shape}, but {path} 0 has shape {shape}; "
                "resize or crop the samples to one size (for example with transforms.Resize((h, w)))"
            )
    dtype = np.result_type(*arrays) if len({a.dtype for a in arrays}) > 1 else arrays[0].dtype
    if dtype.kind in "OUSV":
        raise TypeError(f"default_collate: cannot batch arrays of dtype {dtype} ({path} 0)")
    if allocate is None:
        return np.stack(arrays)
    out = allocate((len(arrays), *shape), dtype)
    return np.stack(arrays, out=out)


def _from_scalars(batch: list, allocate: Allocate | None, path: str) -> np.ndarray:
    for position, value in enumerate(batch):
        if isinstance(value, complex) or not isinstance(value, numbers.Real):
            raise TypeError(f"default_collate: {path} {position} is a {type(value).__name__}, but {path} 0 is a number")
    if all(isinstance(v, (bool, np.bool_)) for v in batch):
        dtype = np.bool_
    elif all(isinstance(v, numbers.Integral) for v in batch):
        dtype = np.int64
    else:
        dtype = np.float32
    values = np.array(batch, dtype=dtype)
    if allocate is None:
        return values
    out = allocate(values.shape, values.dtype)
    out[...] = values
    return out


def _rebuild_mapping(template: Mapping, fields: dict):
    try:
        return type(template)(fields)
    except TypeError:  # a Mapping whose constructor takes something else (defaultdict, ...)
        return fields


def _keys(sample) -> list | str:
    return list(sample) if isinstance(sample, Mapping) else f"no keys (it is a {type(sample).__name__})"


def _length(sample) -> int | str:
    try:
        return len(sample)
    except TypeError:
        return "n/a"
