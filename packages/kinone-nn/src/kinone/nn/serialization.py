"""Saving and loading state dicts as `.npz` files: no pickle, atomic writes.

A file holds one array per state-dict key (in order) and, optionally, a JSON metadata object
stored as UTF-8 bytes under `__kinone_metadata__`. Writes go to a temporary file in the same
directory, are fsync'ed, then renamed over the target: a crash mid-write leaves the previous
file whole.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from kinone.autograd import Tensor

METADATA_KEY = "__kinone_metadata__"


def atomic_write(path, write) -> None:
    """Call `write(file_object)` on a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def save(state_dict, path, metadata: dict | None = None) -> None:
    """Write `state_dict` (key -> array, Tensor or number) to `path` as `.npz`, atomically."""
    arrays = OrderedDict()
    for key, value in state_dict.items():
        if key == METADATA_KEY:
            raise ValueError(f"save: the key {METADATA_KEY!r} is reserved")
        array = value.data if isinstance(value, Tensor) else np.asarray(value)
        if array.dtype.hasobject:
            raise TypeError(f"save: {key!r} holds Python objects (dtype object); only numeric arrays can be saved without pickle")
        arrays[key] = array
    if metadata is not None:
        arrays[METADATA_KEY] = np.frombuffer(json.dumps(metadata).encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_with_metadata(path) -> tuple["OrderedDict[str, np.ndarray]", dict | None]:
    """Read a file written by `save`: (state dict of arrays in saved order, metadata or None)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load: no such file: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = OrderedDict((key, npz[key]) for key in npz.files)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise ValueError(f"load: {path} is not a readable Kinone .npz file ({error})") from error
    raw = arrays.pop(METADATA_KEY, None)
    metadata = None if raw is None else json.loads(raw.tobytes().decode("utf-8"))
    return arrays, metadata


def load(path) -> "OrderedDict[str, np.ndarray]":
    """Read the state dict written by `save` (arrays, in the saved order)."""
    return load_with_metadata(path)[0]
