"""Broadcasts from one rank: a model's parameters and buffers, and a state dict.

Used at start (every rank begins from rank 0's initial weights) and on resume (rank 0 reads
the checkpoint and sends it). Without pickle: a state dict travels as a JSON header that
describes its structure (dicts, lists, tuples, numbers, strings) with every NumPy array
replaced by its dtype and shape, followed by one Bcast of each array's bytes.
"""

from __future__ import annotations

import json

import numpy as np

from kinone.autograd import backend, increment_version

from .collectives import check_same_everywhere
from .runtime import active_comm, rank, world_size


def _check_root(where: str, root: int) -> None:
    if isinstance(root, bool) or not isinstance(root, int) or not 0 <= root < world_size():
        raise ValueError(f"{where}: root must be a rank in [0, {world_size() - 1}], got {root!r}")


def broadcast_parameters(module, root: int = 0) -> None:
    """Copy rank `root`'s parameters and buffers into every rank's `module`, in place (the same
    Parameter and buffer objects, so an optimizer built before keeps working). The names,
    shapes and dtypes are compared first: a different model on some rank is one clear error."""
    _check_root("broadcast_parameters", root)
    comm = active_comm()
    if comm is None:
        return
    tensors = [(name, t) for name, t in [*module.named_parameters(), *module.named_buffers()] if t is not None]
    check_same_everywhere(
        "broadcast_parameters: the parameters and buffers (name, shape, dtype)",
        [[name, list(t.shape), t.data.dtype.str] for name, t in tensors],
    )
    receiving = rank() != root
    for _, t in tensors:
        data = t.data
        if type(data) is np.ndarray and data.flags.c_contiguous:
            comm.Bcast(data, root=root)
        else:  # a CUDA array (the MPI wheels are not CUDA-aware) or a strided view
            host = np.ascontiguousarray(backend.to_host(data))
            comm.Bcast(host, root=root)
            if receiving:
                data[...] = backend.as_array(host, data)
        if receiving:
            increment_version(t)


# ---------------------------------------------------------------------- state dicts
class _Encoder:
    """A state dict as a JSON-able tree, with its arrays listed apart (see `broadcast_state`)."""

    def __init__(self):
        self.arrays: list[np.ndarray] = []

    def encode(self, value, path: str):
        if isinstance(value, dict):
            return {"dict": [[self.key(k, path), self.encode(v, f"{path}[{k!r}]")] for k, v in value.items()]}
        if isinstance(value, (list, tuple)):
            kind = "list" if isinstance(value, list) else "tuple"
            return {kind: [self.encode(v, f"{path}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, np.ndarray) or backend.is_cuda_array(value):
            return {"array": self.array(backend.to_host(value), path)}
        if isinstance(value, np.generic):
            return {"scalar": self.array(np.asarray(value), path)}
        if value is None or isinstance(value, (bool, int, float, str)):
            return {"value": value}
        raise TypeError(
            f"broadcast_state: {path} is a {type(value).__name__}; expected dicts, lists, tuples, NumPy arrays, "
            "NumPy scalars, numbers, strings, bools or None"
        )

    @staticmethod
    def key(key, path: str):
        if key is None or isinstance(key, (bool, int, float, str)):
            return key
        raise TypeError(
            f"broadcast_state: {path} has a key of type {type(key).__name__}; expected str, int, float, bool or None"
        )

    def array(self, array: np.ndarray, path: str) -> dict:
        if array.dtype.kind not in "biufc":
            raise TypeError(
                f"broadcast_state: {path} is an array of dtype {array.dtype}; expected a numeric or bool dtype"
            )
        self.arrays.append(np.ascontiguousarray(array))
        return {"index": len(self.arrays) - 1, "dtype": array.dtype.str, "shape": list(array.shape)}


def _decode(node, arrays: list[np.ndarray]):
    ((kind, value),) = node.items()
    if kind == "dict":
        return {key: _decode(item, arrays) for key, item in value}
    if kind == "list":
        return [_decode(item, arrays) for item in value]
    if kind == "tuple":
        return tuple(_decode(item, arrays) for item in value)
    if kind == "array":
        return arrays[value["index"]]
    if kind == "scalar":
        return arrays[value["index"]][()]
    return value


def _array_specs(node, specs: list) -> list:
    """The (index, dtype, shape) of every array in the tree, in index order."""
    ((kind, value),) = node.items()
    if kind == "dict":
        for _, item in value:
            _array_specs(item, specs)
    elif kind in ("list", "tuple"):
        for item in value:
            _array_specs(item, specs)
    elif kind in ("array", "scalar"):
        specs.append(value)
    return sorted(specs, key=lambda spec: spec["index"])


def _bcast_bytes(comm, payload: bytes | None, root: int) -> bytes:
    size = np.array([len(payload) if payload is not None else 0], dtype=np.int64)
    comm.Bcast(size, root=root)
    buffer = np.frombuffer(payload, dtype=np.uint8).copy() if payload is not None else np.empty(int(size[0]), np.uint8)
    comm.Bcast(buffer, root=root)
    return buffer.tobytes()


def broadcast_state(state: dict, root: int = 0) -> dict:
    """Rank `root`'s `state` (an optimizer's, a scheduler's or a loader's `state_dict()`: nested
    dicts, lists and tuples of NumPy arrays, numbers, strings, bools and None) on every rank.

    Returns `state` itself on `root` and a new structure elsewhere (whatever the other ranks
    passed is ignored: give None or their own state). Dict keys keep their types (an optimizer's
    integer parameter indices stay ints), tuples stay tuples, arrays keep dtype and shape.
    No pickle: a JSON header, then one Bcast per array. A value that cannot be sent is a
    TypeError on root and the same error, naming root, on the others.
    """
    _check_root("broadcast_state", root)
    comm = active_comm()
    if comm is None:
        return state
    sending = rank() == root
    header = None
    if sending:
        encoder = _Encoder()
        try:
            header = {"tree": encoder.encode(state, "state")}
        except TypeError as error:
            header, failure = {"error": str(error)}, error
    header_bytes = json.dumps(header).encode("utf-8") if sending else None
    received = json.loads(_bcast_bytes(comm, header_bytes, root).decode("utf-8"))
    if "error" in received:
        if sending:
            raise failure
        raise TypeError(f"{received['error']} (on rank {root}, the root of broadcast_state)")
    tree = received["tree"]
    if sending:
        for array in encoder.arrays:
            comm.Bcast(array.reshape(-1).view(np.uint8), root=root)
        return state
    arrays = []
    for spec in _array_specs(tree, []):
        array = np.empty(spec["shape"], dtype=np.dtype(spec["dtype"]))
        comm.Bcast(array.reshape(-1).view(np.uint8), root=root)
        arrays.append(array)
    return _decode(tree, arrays)
