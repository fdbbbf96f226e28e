"""Averaging gradients across ranks: `allreduce_gradients` and Horovod's `DistributedOptimizer`.

The gradients are averaged as one flat vector in their common dtype (float32 for a float32
model; ChainerMN's "flat" communicator): the parameters' `.grad` arrays, laid end to end, are
summed across ranks with in-place Allreduces and divided by the number of ranks, and the
averages are written back into the same arrays.
One flat vector instead of one call per parameter: ResNet-18 has 62 parameter tensors, and
every collective costs a round of latency.

On the CPU the vector goes through one reused buffer of BUCKET_BYTES (2 MiB, the L2 cache
here) at a time: copy a slice of the gradients in, Allreduce it, divide, copy it back. Measured
with ResNet-18's 46.8 MB of gradients, 2 ranks on this 2-core machine, both ways alternating
in one run (medians of 15; the machine was shared): the whole vector packed into one buffer
and reduced by one Allreduce took 51 ms, the 2 MiB buckets 24 ms (1 and 4 MiB: 24 ms,
512 KiB: 27 ms, 8 MiB: 27 ms). MPICH's shared-memory transfers of the whole vector run out of
the caches. Those gradients were reduced over and over; right after a real backward (fresh
gradients, 13 of them strided) the figures are 48 ms with one buffer and 43 ms with buckets.
On a CUDA device the whole vector is one bucket: NCCL streams it at full
bandwidth, and every bucket would cost kernel launches.

Parameters without a gradient contribute zeros. A first, tiny Allreduce counts on how many
ranks each parameter has a gradient: one that has one somewhere gets one everywhere (zeros
where it was None, so all ranks step the same parameters); one that has none anywhere keeps
`.grad = None` everywhere.

From the third call on for the same parameters (host arrays of one dtype), the reduction
moves into backward: `overlap.BucketReducer` reduces each bucket of gradients as soon as
backward has finished it, and this call only completes the step (`OVERLAP = False` keeps
every reduction here, after backward).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from kinone.autograd import Tensor, backend, enable_grad, increment_version

from .collectives import check_same_everywhere
from .overlap import BUCKET_BYTES, BucketReducer
from .runtime import active_comm, mpi

OVERLAP = True  # reduce in backward's hooks from the second step on (module docstring)

# The bucket reducers, by the ids of their parameter list (None: overlap turned off for it,
# after a step that accumulated several backward passes).
_reducers: dict = {}


class _Buffers:
    """One reusable bucket per (device, dtype); the parameter shapes already compared."""

    def __init__(self):
        self.buckets: dict = {}
        self.checked: set = set()

    def get(self, like, dtype, size: int):
        key = (str(backend.device_of(like)), np.dtype(dtype).str)
        bucket = self.buckets.get(key)
        if bucket is None or bucket.size < size:
            if type(like) is np.ndarray:
                bucket = np.empty(size, dtype=dtype)
            else:
                xp = backend.get_array_module(like)
                with xp.cuda.Device(like.device.id):
                    bucket = xp.empty(size, dtype=dtype)
            self.buckets[key] = bucket
        return bucket[:size]


_buffers = _Buffers()


def allreduce_gradients(parameters) -> None:
    """Average `.grad` of every parameter across ranks, in place (see the module docstring).

    Call it on every rank after `backward()` and before the optimizer's step, with the same
    parameters in the same order. Gradients on a CUDA device are reduced with NCCL.
    A no-op without `init()` or with one rank.
    """
    comm = active_comm()
    if comm is None:
        return
    params = list(parameters)
    shapes = tuple(tuple(p.shape) for p in params)
    if shapes not in _buffers.checked:  # a different parameter list on some rank: one error, not a hang
        check_same_everywhere("allreduce_gradients: the parameters' shapes", [list(s) for s in shapes])
        _buffers.checked.add(shapes)
    key = tuple(map(id, params))
    reducer = _reducers.get(key)
    if reducer is not None:
        if reducer.finish(comm):
            return
        if reducer.removed:  # accumulating steps: reduce after backward from now on
            _reducers[key] = None
    _reduce_after_backward(comm, params)
    if OVERLAP and key not in _reducers and comm.Get_size() > 1 and BucketReducer.suits(params):
        _reducers[key] = BucketReducer(comm, params)


def _reduce_after_backward(comm, params: list) -> None:
    having = np.array([p.grad is not None for p in params], dtype=np.int32)
    comm.Allreduce(mpi().IN_PLACE, having)
    grads = []
    for p, count in zip(params, having):
        if count == 0:
            continue
        if p.grad is None:
            p.grad = Tensor(backend.to_device(np.zeros(p.shape, p.data.dtype), backend.device_of(p.data)))
        grads.append(p.grad)
    if not grads:
        return
    _average(comm, grads)
    for g in grads:
        increment_version(g)


def _average(comm, grads: list) -> None:
    """Each array of `grads` (Tensors) = its average over the ranks, through the bucket."""
    like = grads[0].data
    dtype = np.result_type(*(g.data.dtype for g in grads))
    total = sum(g.data.size for g in grads)
    on_host = type(like) is np.ndarray
    bucket = _buffers.get(like, dtype, min(total, BUCKET_BYTES // dtype.itemsize) if on_host else total)
    flats = []
    for g in grads:
        if not g.data.flags.c_contiguous:
            # A strided gradient (conv backward returns 13 of ResNet-18's weight gradients
            # transposed) becomes a C-contiguous copy of itself, in the same Tensor: one
            # strided pass, where reading and writing back through its strides took two more.
            # Ranks may lay it out differently, so its own memory order cannot be summed.
            g.data = _contiguous(g.data)
        flats.append(g.data.reshape(-1))  # a view

    segments, filled = [], 0
    for flat in flats:
        start = 0
        while start < flat.size:
            take = min(flat.size - start, bucket.size - filled)
            segments.append((flat, start, start + take, filled))
            start, filled = start + take, filled + take
            if filled == bucket.size:
                _reduce_bucket(comm, bucket, segments)
                segments, filled = [], 0
    if segments:
        _reduce_bucket(comm, bucket[:filled], segments)


def _contiguous(array):
    """A C-contiguous copy of `array` on its device."""
    return backend.get_array_module(array).ascontiguousarray(array)


def _reduce_bucket(comm, bucket, segments) -> None:
    for flat, start, stop, at in segments:
        bucket[at : at + stop - start] = flat[start:stop]
    _sum_across_ranks(comm, bucket)
    bucket /= comm.Get_size()
    for flat, start, stop, at in segments:
        flat[start:stop] = bucket[at : at + stop - start]


def _sum_across_ranks(comm, flat) -> None:
    """flat = the element-wise sum of every rank's flat, in place."""
    if type(flat) is np.ndarray:
        comm.Allreduce(mpi().IN_PLACE, flat)
        return
    xp = backend.get_array_module(flat)
    if hasattr(xp, "cuda") and hasattr(xp.cuda, "nccl"):  # real CuPy
        from .nccl import nccl_sum_in_place

        nccl_sum_in_place(comm, flat)
        return
    # The stand-in CUDA device (tests): through host memory, as a non-CUDA-aware MPI would.
    host = backend.to_host(flat).copy()
    comm.Allreduce(mpi().IN_PLACE, host)
    flat[...] = xp.asarray(host)


class DistributedOptimizer:
    """Horovod's wrapper: `step()` averages the gradients across ranks, then steps.

        optimizer = DistributedOptimizer(kinone.optim.SGD(model.parameters(), lr=0.1))

    `parameters`: the parameters whose gradients are averaged (default: every parameter of
    the optimizer's `param_groups`, in their order; kept as `averaged_parameters`). Everything else (`zero_grad`,
    `param_groups`, `state`, `state_dict`, `load_state_dict`, any other attribute) is the
    wrapped optimizer's. As in Horovod, the wrapper is an instance of a subclass of the
    wrapped optimizer's class, so an LR scheduler accepts it (`isinstance(opt, Optimizer)`).
    """

    _subclasses: ClassVar[dict] = {}

    def __new__(cls, optimizer, parameters=None):
        if isinstance(optimizer, DistributedOptimizer):
            raise TypeError("DistributedOptimizer: the optimizer is already a DistributedOptimizer")
        if cls is DistributedOptimizer:
            base = type(optimizer)
            cls = DistributedOptimizer._subclasses.get(base)
            if cls is None:
                cls = type(f"Distributed{base.__name__}", (DistributedOptimizer, base), {"__module__": __name__})
                DistributedOptimizer._subclasses[base] = cls
        return object.__new__(cls)

    def __init__(self, optimizer, parameters=None):
        object.__setattr__(self, "optimizer", optimizer)
        if parameters is None:
            parameters = [p for group in optimizer.param_groups for p in group["params"]]
        object.__setattr__(self, "averaged_parameters", list(parameters))

    def step(self, closure=None):
        """Average the gradients, then step the wrapped optimizer. A closure (which recomputes
        the loss and calls backward) runs first, so that its gradients are the ones averaged."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        allreduce_gradients(self.averaged_parameters)
        self.optimizer.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none)

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.optimizer.load_state_dict(state_dict)

    def add_param_group(self, param_group: dict) -> None:
        self.optimizer.add_param_group(param_group)
        self.averaged_parameters.extend(self.optimizer.param_groups[-1]["params"])

    # The wrapped optimizer's attributes, read and written through (param_groups, state, ...).
    def __getattr__(self, name: str):
        if name == "optimizer":  # not set yet (copying, unpickling)
            raise AttributeError(name)
        return getattr(self.optimizer, name)

    def __setattr__(self, name: str, value) -> None:
        if name in ("optimizer", "averaged_parameters"):
            object.__setattr__(self, name, value)
        else:
            setattr(self.optimizer, name, value)

    def __repr__(self) -> str:
        return f"DistributedOptimizer({self.optimizer!r})"
