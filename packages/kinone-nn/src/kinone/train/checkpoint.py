"""Checkpoints: model, optimizer, scheduler, progress and RNG states in one `.npz` (no pickle).

Arrays (parameters, buffers, optimizer moments, NumPy's RNG key) are stored as named arrays:
`model.<state-dict key>`, `optimizer.<path>`, ...; everything else (hyper-parameters, step
counts, scheduler fields, Python's and Kinone's RNG states, the epoch and step) goes into the
file's JSON metadata, where each array is replaced by `{"__array__": "<its key>"}`. The write
is atomic (kinone.nn.save), so a crash leaves the previous checkpoint whole.

Files are device-free: every array is written from the host (state dicts give host arrays,
an array on a CUDA device is copied), and loading puts each array on the device of the
parameter or buffer it fills, so a checkpoint saved on "cuda" resumes on the CPU and back.
"""

from __future__ import annotations

import random
from collections import OrderedDict

import numpy as np

from kinone.autograd import backend, default_generator
from kinone.nn.serialization import load_with_metadata, read_metadata, save

FORMAT = "kinone-checkpoint"
VERSION = 1


def _split_arrays(value, path: str, arrays: OrderedDict):
    """Replace every array inside nested dicts/lists/tuples by a reference, collecting it (on
    the host)."""
    if backend.is_cuda_array(value):
        value = backend.to_host(value)
    if isinstance(value, np.ndarray):
        arrays[path] = value
        return {"__array__": path}
    if isinstance(value, dict):
        return {str(k): _split_arrays(v, f"{path}.{k}", arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_split_arrays(v, f"{path}.{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _join_arrays(value, arrays, path=None):
    """Put back the arrays `_split_arrays` replaced; a reference to an array the file lacks is
    an error naming the file (`path`)."""
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            key = value["__array__"]
            if not isinstance(key, str) or key not in arrays:
                raise ValueError(
                    f"load_checkpoint: {path}: its metadata refers to an array {key!r} the file does not hold"
                )
            return arrays[key]
        return {k: _join_arrays(v, arrays, path) for k, v in value.items()}
    if isinstance(value, list):
        return [_join_arrays(v, arrays, path) for v in value]
    return value


def _checked_metadata(path, metadata) -> dict:
    """The metadata of a checkpoint, its fields that readers index of the right JSON type."""
    if not metadata or metadata.get("format") != FORMAT:
        raise ValueError(f"load_checkpoint: {path} is not a Kinone checkpoint (no '{FORMAT}' metadata)")
    present_optional = [field for field in ("optimizer", "scheduler") if field in metadata]
    for field in ["progress", "rng", *present_optional]:
        if not isinstance(metadata.get(field), dict):
            found = type(metadata[field]).__name__ if field in metadata else "missing"
            raise ValueError(
                f"load_checkpoint: {path}: its metadata field {field!r} must be a JSON object; it is {found}"
            )
    return metadata


def capture_rng_state() -> dict:
    """The states of every generator a training step may draw from: Python's `random`, NumPy's
    global RNG (augmentations) and Kinone's generator (dropout, init)."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(legacy=False),
        "kinone": default_generator().bit_generator.state,
    }


def restore_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = dict(state["numpy"])
    numpy_state["state"] = dict(numpy_state["state"])
    numpy_state["state"]["key"] = np.asarray(numpy_state["state"]["key"], dtype=np.uint32)
    np.random.set_state(numpy_state)
    default_generator().bit_generator.state = state["kinone"]


def save_checkpoint(path, model, optimizer=None, scheduler=None, rng_state: dict | None = None, **progress) -> None:
    """Write model/optimizer/scheduler state, `progress` (epoch, step, best metric, ...: JSON
    values) and the RNG states (`rng_state`, by default the current ones) to `path`, atomically."""
    arrays: OrderedDict = OrderedDict(("model." + k, v) for k, v in model.state_dict().items())
    metadata = {"format": FORMAT, "version": VERSION, "progress": progress}
    if optimizer is not None:
        metadata["optimizer"] = _split_arrays(optimizer.state_dict(), "optimizer", arrays)
    if scheduler is not None:
        metadata["scheduler"] = _split_arrays(scheduler.state_dict(), "scheduler", arrays)
    metadata["rng"] = _split_arrays(rng_state or capture_rng_state(), "rng", arrays)
    save(arrays, path, metadata=metadata)


def load_checkpoint(path, model=None, optimizer=None, scheduler=None, restore_rng: bool = True) -> dict:
    """Load what `save_checkpoint` wrote into the given objects (strictly); return `progress`."""
    progress, rng_state = load_training_state(path, model, optimizer, scheduler)
    if restore_rng:
        restore_rng_state(rng_state)
    return progress


def load_training_state(path, model=None, optimizer=None, scheduler=None) -> tuple[dict, dict]:
    """Like `load_checkpoint`, reading the file once, but hand back the RNG states instead of
    restoring them: (progress, rng_state). A trainer restores them after positioning its data."""
    arrays, metadata = load_with_metadata(path)
    metadata = _checked_metadata(path, metadata)
    if model is not None:
        model.load_state_dict(OrderedDict((k[len("model.") :], v) for k, v in arrays.items() if k.startswith("model.")))
    if optimizer is not None:
        if "optimizer" not in metadata:
            raise ValueError(f"load_checkpoint: {path} holds no optimizer state")
        optimizer.load_state_dict(_join_arrays(metadata["optimizer"], arrays, path))
    if scheduler is not None:
        if "scheduler" not in metadata:
            raise ValueError(f"load_checkpoint: {path} holds no scheduler state")
        scheduler.load_state_dict(_join_arrays(metadata["scheduler"], arrays, path))
    return metadata["progress"], _join_arrays(metadata["rng"], arrays, path)


def read_checkpoint_progress(path) -> dict:
    """Only the progress record (epoch, step, metrics) of a checkpoint: reads its metadata, no
    array (a dashboard may call it on every refresh)."""
    metadata = read_metadata(path)
    if metadata is None or "progress" not in metadata:
        return {}
    progress = metadata["progress"]
    if not isinstance(progress, dict):
        raise ValueError(
            f"load_checkpoint: {path}: its metadata field 'progress' must be a JSON object, not {type(progress).__name__}"
        )
    return progress


def read_rng_state(path) -> dict:
    """The RNG states saved in a checkpoint, for `restore_rng_state`."""
    arrays, metadata = load_with_metadata(path)
    return _join_arrays(_checked_metadata(path, metadata)["rng"], arrays, path)
