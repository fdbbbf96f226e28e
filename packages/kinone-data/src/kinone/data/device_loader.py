"""`DeviceLoader`: a loader's batches on a CUDA device, the next batch's copy overlapping this step.

    train = DeviceLoader(DataLoader(dataset, batch_size=256, num_workers=8), "cuda")
    for images, labels in train:      # Tensors already on cuda:0
        ...

What it does per batch, on CuPy: the host arrays are copied into a pinned (page-locked) host
buffer, and from there to the device on a copy stream of their own; the compute stream waits
for that copy only when the batch is used, one step later. So the upload of batch k+1 runs
while the GPU computes step k, as PyTorch's `pin_memory=True` with `non_blocking=True` copies
do. It holds at most two batches on the device (the one in use and the one arriving) and
reuses its pinned buffers. On the CPU it passes batches through; on the stand-in device (tests)
it copies synchronously through the same code path minus streams.

The wrapper keeps the loader's `__len__`, `set_epoch`, `state_dict` and `load_state_dict`, so
`Trainer` positions it for an exact resume like the loader itself.
"""

from __future__ import annotations

import numpy as np

from kinone.autograd import Tensor, backend


def _host_parts(batch):
    """The batch's arrays (a Tensor, an array, or a tuple/list of them), as host NumPy arrays."""
    if isinstance(batch, (tuple, list)):
        return type(batch)(_host_parts(part) for part in batch)
    if isinstance(batch, Tensor):
        return batch.numpy()
    return np.asarray(batch)


class _PinnedUploader:
    """Copies host arrays to a CUDA device through reused pinned buffers on a copy stream.
    Real CuPy only: not run in CI (no GPU there); checked on a GPU by benchmarks/gpu/run.sh."""

    def __init__(self, xp, device: backend.Device):
        self.xp, self.device = xp, device
        with xp.cuda.Device(device.index):
            self.stream = xp.cuda.Stream(non_blocking=True)
        self.buffers: list = [{}, {}]  # two sets: the batch in use and the one arriving
        self.copied = [None, None]  # the event after which each set may be overwritten
        self.turn = 0

    def upload(self, arrays):
        xp = self.xp
        turn = self.turn
        self.turn = 1 - turn
        pinned = self.buffers[turn]
        if self.copied[turn] is not None:  # the copy out of this set two batches ago is done
            self.copied[turn].synchronize()
        out = []
        with xp.cuda.Device(self.device.index), self.stream:
            for i, array in enumerate(arrays):
                array = np.ascontiguousarray(array)
                buffer = pinned.get(i)
                if buffer is None or buffer.nbytes < array.nbytes:
                    memory = xp.cuda.alloc_pinned_memory(array.nbytes)
                    buffer = pinned[i] = np.frombuffer(memory, np.uint8, array.nbytes)
                host = buffer[: array.nbytes].view(array.dtype).reshape(array.shape)
                host[...] = array
                device_array = xp.empty(array.shape, array.dtype)
                device_array.set(host, stream=self.stream)
                out.append(device_array)
            ready = self.copied[turn] = self.stream.record()
        return out, ready


class DeviceLoader:
    """Wraps a loader (see the module docstring); `device` "cpu", "cuda" or "cuda:N"."""

    def __init__(self, loader, device):
        self.loader = loader
        self.device = backend.Device(device)
        self._uploader = None

    def __len__(self):
        return len(self.loader)

    def __getattr__(self, name):  # set_epoch, state_dict, load_state_dict, dataset, batch_size, ...
        if name in ("loader", "device", "_uploader"):
            raise AttributeError(name)
        return getattr(self.loader, name)

    def _move(self, batch):
        """(the batch as Tensors on the device, an event to wait for before using it, or None)."""
        parts = _host_parts(batch)
        flat = list(parts) if isinstance(parts, (tuple, list)) else [parts]
        xp = backend.cuda_module()
        if getattr(xp, "__name__", "") == "cupy":
            if self._uploader is None:
                self._uploader = _PinnedUploader(xp, self.device)
            arrays, ready = self._uploader.upload(flat)
        else:  # the stand-in: the same result, copied synchronously
            arrays, ready = [backend.to_device(a, self.device) for a in flat], None
        tensors = [Tensor(a) for a in arrays]
        moved = type(parts)(tensors) if isinstance(parts, (tuple, list)) else tensors[0]
        return moved, ready

    def __iter__(self):
        if self.device.type == "cpu":
            yield from self.loader
            return
        pending = None
        for batch in self.loader:
            arriving = self._move(batch)  # starts copying while the previous batch computes
            if pending is not None:
                yield self._ready(pending)
            pending = arriving
        if pending is not None:
            yield self._ready(pending)

    def _ready(self, pending):
        batch, ready = pending
        if ready is not None:  # the compute stream waits for the copy, the host does not
            backend.cuda_module().cuda.get_current_stream().wait_event(ready)
        return batch
