"""Collectives on host data: gather arrays of unequal lengths, compare values across ranks,
average batch-norm statistics.

No pickle anywhere: values travel as JSON text or as the raw bytes of NumPy arrays, with the
dtype and shape described in JSON. Every function here is a no-op returning its input when
`active_comm()` is None (no init, or one rank).

A failure that only one rank can see (a value that is not JSON, a shape that differs) must
not leave the others waiting: each function first exchanges a small description with every
rank, and all ranks raise the same error when any description is bad.
"""

from __future__ import annotations

import json

import numpy as np

from kinone.autograd import backend, increment_version

from .runtime import active_comm, mpi, rank


def allgather_bytes(comm, payload: bytes) -> list[bytes]:
    """Every rank's `payload`, in rank order (Allgather of the lengths, then Allgatherv)."""
    sizes = np.zeros(comm.Get_size(), dtype=np.int64)
    comm.Allgather(np.array([len(payload)], dtype=np.int64), sizes)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    gathered = np.empty(int(offsets[-1]), dtype=np.uint8)
    MPI = mpi()
    comm.Allgatherv(np.frombuffer(payload, dtype=np.uint8), [gathered, sizes, offsets[:-1], MPI.BYTE])
    return [gathered[offsets[r] : offsets[r + 1]].tobytes() for r in range(comm.Get_size())]


def _describe_groups(texts: list[str], limit: int = 200) -> str:
    """'rank 0: a; ranks 1, 2: b' with each value cut to `limit` characters."""
    groups: dict[str, list[int]] = {}
    for r, text in enumerate(texts):
        groups.setdefault(text, []).append(r)
    parts = []
    for text, ranks in groups.items():
        shown = text if len(text) <= limit else text[:limit] + "..."
        label = "rank" if len(ranks) == 1 else "ranks"
        parts.append(f"{label} {', '.join(map(str, ranks))}: {shown}")
    return "; ".join(parts)


def check_same_everywhere(name: str, value) -> None:
    """Raise ValueError on every rank when `value` (JSON-able: a config, a dataset size) is not
    the same on all ranks; the message names the differing ranks and their values. A value
    that is not JSON-able is a TypeError in one process, and differs from every other rank's
    under MPI (so that all ranks raise together instead of waiting for the one that failed)."""
    comm = active_comm()
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        if comm is None:
            raise TypeError(f"check_same_everywhere: {name!r} is not JSON-able: {error}") from None
        text = f"<not JSON-able on rank {rank()}: {error}>"
    if comm is None:
        return
    texts = [b.decode("utf-8") for b in allgather_bytes(comm, text.encode("utf-8"))]
    if len(set(texts)) > 1:
        raise ValueError(f"check_same_everywhere: {name!r} differs across ranks: {_describe_groups(texts)}")


def all_gather(array) -> np.ndarray:
    """Every rank's array concatenated along dim 0 in rank order (a host NumPy array).

    Ranks may hold different numbers of rows (validation predictions of an unpadded split);
    the other dims and the dtype must agree. A CUDA array is copied to the host first.
    """
    array = backend.to_host(array)
    if array.ndim == 0:
        raise ValueError("all_gather: expected an array with at least 1 dim (rows to concatenate), got a 0-d array")
    array = np.ascontiguousarray(array)
    comm = active_comm()
    if comm is None:
        return array
    header = json.dumps({"rows": array.shape[0], "row_shape": list(array.shape[1:]), "dtype": array.dtype.str})
    headers = [json.loads(b) for b in allgather_bytes(comm, header.encode())]
    kinds = [json.dumps({"row_shape": h["row_shape"], "dtype": h["dtype"]}) for h in headers]
    if len(set(kinds)) > 1:
        raise ValueError(f"all_gather: the arrays' dims after the first, or dtypes, differ: {_describe_groups(kinds)}")
    rows = [h["rows"] for h in headers]
    row_bytes = array.dtype.itemsize * int(np.prod(array.shape[1:], dtype=np.int64))
    sizes = np.array(rows, dtype=np.int64) * row_bytes
    offsets = np.concatenate([[0], np.cumsum(sizes)])[:-1]
    gathered = np.empty(sum(rows) * row_bytes, dtype=np.uint8)
    comm.Allgatherv(array.reshape(-1).view(np.uint8), [gathered, sizes, offsets, mpi().BYTE])
    return gathered.view(array.dtype).reshape((sum(rows), *array.shape[1:]))


def average_buffers(module) -> None:
    """Average every floating buffer of `module` (batch-norm running statistics) across ranks,
    in place. Run it before validation and before each checkpoint, so that every rank
    evaluates, and rank 0 saves, the same statistics. Integer buffers (num_batches_tracked)
    are equal on every rank already and stay as they are."""
    comm = active_comm()
    if comm is None:
        return
    buffers = [(name, b) for name, b in module.named_buffers() if b is not None and b.data.dtype.kind == "f"]
    check_same_everywhere(
        "average_buffers: the floating buffers (name, shape, dtype)",
        [[name, list(b.shape), b.data.dtype.str] for name, b in buffers],
    )
    for dtype in sorted({b.data.dtype.str for _, b in buffers}):
        group = [b for _, b in buffers if b.data.dtype.str == dtype]
        flat = np.concatenate([backend.to_host(b.data).reshape(-1) for b in group])
        comm.Allreduce(mpi().IN_PLACE, flat)
        flat /= comm.Get_size()
        offset = 0
        for b in group:
            values = flat[offset : offset + b.data.size].reshape(b.shape)
            b.data[...] = backend.as_array(values, b.data)
            increment_version(b)
            offset += b.data.size
