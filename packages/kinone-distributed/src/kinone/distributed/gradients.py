"""Averaging gradients across ranks: `allreduce_gradients` and Horovod's `DistributedOptimizer`.

One flat buffer per step, one in-place Allreduce (ChainerMN's "flat" communicator, DDP's
buckets without the overlap): every gradient is copied into the buffer, the buffer is summed
across ranks in place and divided by the number of ranks, and the averages are copied back
into the same `.grad` arrays. One call instead of one per parameter: ResNet-18 has 62
parameter tensors, and each collective costs a round of latency.

The buffer ends with one presence flag per parameter (1 where the rank had a gradient, 0
where `.grad` was None, whose slots hold zeros): after the sum, a parameter whose flag is
non-zero has a gradient on every rank (created where it was None, so all ranks step the same
parameters), and one whose flag is zero everywhere keeps `.grad = None` everywhere.

Buckets (overlapping the reduction of late layers with the backward of early ones) would need
a progress thread or polling in MPI and hooks in the engine; on one machine the single
reduction is a small share of the step (benchmarks/cases_distributed.py), so there are none.
"""

from __future__ import annotations

import numpy as np

from kinone.autograd import Tensor, backend, enable_grad, increment_version

from .collectives import check_same_everywhere
from .runtime import active_comm, mpi


class _FlatBuffers:
    """One reusable flat buffer per (device, dtype): allocating ResNet-18's 47 MB afresh every
    step costs its page faults each time."""

    def __init__(self):
        self.buffers: dict = {}
        self.checked: set = set()  # parameter shapes already compared across ranks

    def get(self, like, dtype, size: int):
        key = (str(backend.device_of(like)), np.dtype(dtype).str)
        buffer = self.buffers.get(key)
        if buffer is None or buffer.size < size:
            xp = backend.get_array_module(like)
            buffer = self.buffers[key] = xp.empty(size, dtype=dtype)
        return buffer[:size]


_flat = _FlatBuffers()


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
    if not params:
        return
    shapes = tuple(tuple(p.shape) for p in params)
    if shapes not in _flat.checked:  # a different parameter list on some rank: one error, not a hang
        check_same_everywhere("allreduce_gradients: the parameters' shapes", [list(s) for s in shapes])
        _flat.checked.add(shapes)
    like = params[0].data
    dtype = np.result_type(*(p.data.dtype for p in params))
    total = sum(p.data.size for p in params)
    flat = _flat.get(like, dtype, total + len(params))
    _pack(params, flat, total)
    _sum_across_ranks(comm, flat)
    flat /= comm.Get_size()
    _unpack(params, flat, total)


def _pack(params, flat, total: int) -> None:
    offset = 0
    flags = flat[total:]
    for i, p in enumerate(params):
        size = p.data.size
        if p.grad is None:
            flat[offset:offset + size] = 0
            flags[i] = 0
        else:
            flat[offset:offset + size] = p.grad.data.reshape(-1)
            flags[i] = 1
        offset += size


def _unpack(params, flat, total: int) -> None:
    present = backend.to_host(flat[total:]) > 0  # one small copy from a device
    offset = 0
    for i, p in enumerate(params):
        size = p.data.size
        average = flat[offset:offset + size].reshape(p.data.shape)
        offset += size
        if not present[i]:
            continue
        if p.grad is None:
            p.grad = Tensor(average.astype(p.data.dtype, copy=True))
        else:
            p.grad.data[...] = average
            increment_version(p.grad)


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

    _subclasses: dict = {}

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

    def __init__(self, optimizer, parameters=None):  # noqa: D107 - the wrapped optimizer is already built
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
