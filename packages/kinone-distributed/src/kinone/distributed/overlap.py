"""Reducing gradients while backward still runs (host arrays): PyTorch DDP's buckets.

After the first `allreduce_gradients` call for a list of parameters, a `BucketReducer` takes
over for that list. In its first step it only notes the order in which gradients become
ready (rank 0's order is used everywhere); from then on it lays the gradients end to end in
one flat buffer in that order, cut into buckets of about BUCKET_BYTES.
Each parameter gets a post-accumulate hook (`Tensor.register_post_accumulate_grad_hook`):
when its gradient of the pass is complete, the hook copies it into its slot (while it is
still in the caches; a transposed gradient becomes contiguous in the same pass; divided by
the number of ranks in the same pass), and when a bucket is full, the bucket is summed
across ranks there, in the middle of backward. `allreduce_gradients` then only reduces what is left and points every `.grad` at
its slot of the averaged buffer (no copy back).

Every rank reduces the buckets in index order, exactly once per step (a bucket that is full
waits for the ones before it), on a communicator of its own: whether a bucket is reduced in
a hook or at the end differs between ranks (an unused parameter on one rank), the sequence
of collectives does not. A parameter without a gradient on a rank contributes zeros; one
without a gradient on any rank keeps `.grad = None` (as `allreduce_gradients` always did).
A second backward before the reduction (gradient accumulation) is seen in the hooks: that
step is redone whole on the final gradients, and the buckets are not used again.
"""

from __future__ import annotations

import time

import numpy as np

from kinone.autograd import Tensor, increment_version

from .runtime import mpi

BUCKET_BYTES = 2 << 20  # the Allreduce's chunk too: MPICH's shared-memory copies stay in L2


class BucketReducer:
    """Hooks on `params` (leaf tensors on the host, one floating dtype) that average their
    gradients across the ranks of `comm` bucket by bucket during backward; `finish()` ends
    the step (module docstring)."""

    def __init__(self, comm, params: list):
        self.comm = comm.Dup()  # the buckets' own sequence of collectives
        self.params = params
        self.flat = np.empty(sum(p.data.size for p in params), dtype=params[0].data.dtype)
        self.slots: dict = {}  # parameter -> its gradient's view of `flat`
        self.buckets: list[tuple[int, int, list]] = []  # (start, stop, parameters)
        self.bucket_of: dict = {}
        self.arrivals: list | None = []  # the first step only: the order gradients become ready
        self.index = {p: i for i, p in enumerate(params)}
        self.scale = self.flat.dtype.type(1.0 / self.comm.Get_size())
        self.handles = [p.register_post_accumulate_grad_hook(self._gradient_ready) for p in params]
        self.seconds = 0.0  # time in the hooks and finish(), all steps (the benchmark reads it)
        self._new_step()

    def _lay_out(self, order: list) -> None:
        """Slots and buckets with the parameters in `order` (indices into `params`)."""
        itemsize = self.flat.itemsize
        self.buckets, start, offset, members = [], 0, 0, []
        for position, index in enumerate(order):
            p = self.params[index]
            self.slots[p] = self.flat[offset : offset + p.data.size].reshape(p.shape)
            members.append(p)
            offset += p.data.size
            if (offset - start) * itemsize >= BUCKET_BYTES or position == len(order) - 1:
                self.buckets.append((start, offset, members))
                start, members = offset, []
        self.bucket_of = {p: i for i, (_, _, members) in enumerate(self.buckets) for p in members}

    def _learn_layout(self, main_comm) -> None:
        """Rank 0's arrival order of the first step (the parameters that had no gradient there
        last, in reverse order of the list), the same on every rank: DDP rebuilds its buckets
        the same way after its first iteration."""
        arrived = dict.fromkeys(self.arrivals)
        order = list(arrived) + [i for i in reversed(range(len(self.params))) if i not in arrived]
        order = np.array(order, dtype=np.int64)
        main_comm.Bcast(order, root=0)
        self.arrivals = None
        self._lay_out([int(i) for i in order])
        self._new_step()

    @staticmethod
    def suits(params: list) -> bool:
        """Leaves that require grad, all host arrays of one floating dtype."""
        return (
            bool(params)
            and all(
                type(p.data) is np.ndarray
                and p.requires_grad
                and p.grad_fn is None
                and p.data.dtype == params[0].data.dtype
                for p in params
            )
            and params[0].data.dtype.kind == "f"
        )

    def _new_step(self) -> None:
        self.missing = [len(members) for _, _, members in self.buckets]
        self.copied: set = set()  # parameters whose gradient is in its slot this step
        self.next_bucket = 0
        self.accumulating = False

    # ------------------------------------------------------------------ during backward
    def _gradient_ready(self, p: Tensor) -> None:
        if self.arrivals is not None:  # learning the layout
            self.arrivals.append(self.index[p])
            return
        if p in self.copied:  # a second backward before finish(): gradient accumulation
            self.accumulating = True
            return
        start_time = time.perf_counter()
        self._copy_in(p)
        self.missing[self.bucket_of[p]] -= 1
        if not self.accumulating:
            while self.next_bucket < len(self.buckets) and self.missing[self.next_bucket] == 0:
                self._reduce_next_bucket()
        self.seconds += time.perf_counter() - start_time

    def _copy_in(self, p: Tensor) -> None:
        """The gradient into its slot, divided by the number of ranks in the same pass (the
        bucket's sum is then the average: no pass to divide after the Allreduce; for a power
        of two ranks the result is bit for bit the same)."""
        slot, grad = self.slots[p], p.grad
        if grad is None:
            slot[...] = 0
        elif _same_memory(grad.data, slot):
            slot *= self.scale
        else:
            np.multiply(grad.data, self.scale, out=slot)
        self.copied.add(p)

    def _reduce_next_bucket(self) -> None:
        start, stop, _ = self.buckets[self.next_bucket]
        chunk = BUCKET_BYTES // self.flat.itemsize
        for at in range(start, stop, chunk):
            self.comm.Allreduce(mpi().IN_PLACE, self.flat[at : min(at + chunk, stop)])
        self.next_bucket += 1

    # ------------------------------------------------------------------ after backward
    def finish(self, main_comm) -> bool:
        """Reduce what is left, then point each `.grad` at its averaged slot. Returns False
        when the caller must reduce this step's gradients itself: the step that learned the
        layout, and a step where some rank accumulated over several backward passes (the
        hooks are removed then, `removed` is True)."""
        if self.arrivals is not None:
            self._learn_layout(main_comm)
            return False
        start_time = time.perf_counter()
        while self.next_bucket < len(self.buckets):
            for p in self.buckets[self.next_bucket][2]:
                if p not in self.copied:  # no hook this step (no gradient here, or set by hand)
                    self._copy_in(p)
            self._reduce_next_bucket()
        flags = np.array([p.grad is not None for p in self.params] + [self.accumulating], dtype=np.int32)
        main_comm.Allreduce(mpi().IN_PLACE, flags)
        if flags[-1]:
            self.remove()
            return False
        for p, count in zip(self.params, flags[:-1]):
            if count == 0:
                continue
            if p.grad is None:
                p.grad = Tensor(self.slots[p])
            else:
                p.grad.data = self.slots[p]
            increment_version(p.grad)
        self._new_step()
        self.seconds += time.perf_counter() - start_time
        return True

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    @property
    def removed(self) -> bool:
        return not self.handles


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.ctypes.data == b.ctypes.data and a.strides == b.strides
