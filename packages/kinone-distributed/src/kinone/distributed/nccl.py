"""Summing a flat CUDA buffer across ranks with NCCL, bootstrapped over MPI (as ChainerMN did).

The MPI wheels are not CUDA-aware, so device gradients go through NCCL (`cupy.cuda.nccl`):
rank 0 makes a unique id, MPI broadcasts it (as 128 integers, no pickle), and every rank
builds its NCCL communicator on its current CUDA device, once per device.

NOT RUN IN CI: the CI machine has no GPU and no CuPy. The code around it (packing gradients
into a flat device buffer, dividing, unpacking, presence flags) runs in CI on the stand-in
CUDA device, whose buffer goes through host memory and MPI instead of this function.
"""

from __future__ import annotations

import numpy as np

_communicators: dict[int, object] = {}  # CUDA device id -> NcclCommunicator


def _unique_id_everywhere(comm, nccl):
    """Rank 0's NCCL unique id on every rank, in the form CuPy gave it (a tuple of ints or bytes)."""
    if comm.Get_rank() == 0:
        uid = nccl.get_unique_id()
        as_bytes = isinstance(uid, (bytes, bytearray))
        values = np.frombuffer(bytes(uid), dtype=np.int8) if as_bytes else np.array(uid, dtype=np.int8)
        message = np.concatenate([[int(as_bytes), values.size], values.astype(np.int64)])
        message = np.pad(message, (0, 2 + 256 - message.size))
    else:
        message = np.zeros(2 + 256, dtype=np.int64)
    comm.Bcast(message, root=0)
    as_bytes, size = bool(message[0]), int(message[1])
    values = message[2 : 2 + size].astype(np.int8)
    return values.tobytes() if as_bytes else tuple(int(v) for v in values)


def _communicator(comm, device_id: int):
    from cupy.cuda import nccl

    nc = _communicators.get(device_id)
    if nc is None:
        uid = _unique_id_everywhere(comm, nccl)
        nc = _communicators[device_id] = nccl.NcclCommunicator(comm.Get_size(), uid, comm.Get_rank())
    return nc


def nccl_sum_in_place(comm, flat) -> None:
    """flat (a contiguous CuPy array, float32 or float64) = its sum over every rank, in place,
    on the current stream (later kernels on that stream see the result; no host sync)."""
    import cupy
    from cupy.cuda import nccl

    types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64}
    if flat.dtype not in types:
        raise TypeError(f"allreduce_gradients: NCCL reduces float32 or float64 gradients, got {flat.dtype}")
    with cupy.cuda.Device(flat.device.id):
        nc = _communicator(comm, flat.device.id)
        stream = cupy.cuda.get_current_stream()
        nc.allReduce(flat.data.ptr, flat.data.ptr, flat.size, types[flat.dtype], nccl.NCCL_SUM, stream.ptr)
