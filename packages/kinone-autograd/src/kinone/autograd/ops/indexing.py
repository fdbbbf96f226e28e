"""Indexing: `x[index]` with ints, slices, None, Ellipsis, integer and boolean arrays.

On a CUDA device, index arrays given on the host (NumPy arrays, lists) are copied to the
device first, as PyTorch accepts a CPU index tensor for a CUDA tensor; an index array on a
CUDA device for a CPU tensor is refused, as PyTorch refuses it.
"""

from __future__ import annotations

import numpy as np

from ..backend import device_of, get_array_module, is_cuda_array
from ..function import Function


def _parts(index) -> tuple:
    return index if isinstance(index, tuple) else (index,)


def _is_index_array(part) -> bool:
    return isinstance(part, np.ndarray) or is_cuda_array(part)


def _has_integer_array(index) -> bool:
    return any(_is_index_array(p) and p.dtype.kind in "iu" for p in _parts(index))


def _on_device(index, xp):
    """`index` with its host arrays copied onto `xp`'s device (CUDA only)."""
    if not isinstance(index, tuple):
        return xp.asarray(index) if isinstance(index, np.ndarray) else index
    return tuple(xp.asarray(p) if isinstance(p, np.ndarray) else p for p in index)


def _refuse_device_index(x, index) -> None:
    for part in _parts(index):
        if is_cuda_array(part) and not is_cuda_array(x):
            raise RuntimeError(
                f"getitem: an index array on {device_of(part)} cannot index a tensor on {device_of(x)} "
                "(indices must be on the cpu or on the tensor's device); move the index with .cpu()"
            )


def scatter_add_deterministic(full, index, grad):
    """`full[index] += grad` with repeated positions summed, on any array module, without
    atomics: each position receives its values in the order they occur in `index` (as
    `np.add.at` does), one pass per repeat, so two runs give the same bits.

    The flat position of every picked element is gathered from an arange shaped like `full`;
    a sort by (position, occurrence) ranks each occurrence of a position; pass k adds the
    k-th occurrences, whose positions are unique, with a plain gather-add-scatter.
    """
    xp = get_array_module(full)
    flat = full.reshape(-1)  # `full` is a fresh contiguous array: a view
    positions = xp.arange(full.size, dtype=np.int64).reshape(full.shape)[index].reshape(-1)
    values = grad.reshape(-1)  # grad is shaped like full[index]
    count = positions.size
    if count == 0:
        return full
    order = xp.argsort(positions * count + xp.arange(count, dtype=np.int64))  # unique keys: any sort
    positions, values = positions[order], values[order]
    starts = xp.concatenate([xp.ones(1, dtype=bool), positions[1:] != positions[:-1]])
    group = xp.cumsum(starts) - 1  # the group (position) of each sorted element
    rank = xp.arange(count, dtype=np.int64) - xp.flatnonzero(starts)[group]
    for k in range(int(rank.max()) + 1):
        picked = rank == k
        where = positions[picked]
        flat[where] = flat[where] + values[picked]
    return full


class GetItem(Function):
    """y = x[index];  dL/dx = zeros like x with g added at `index`.

    With integer-array (fancy) indices an element may be picked several times; its
    gradients are then summed (`np.add.at` on the CPU; on a CUDA device a deterministic
    sort-based sum in the same order, `scatter_add_deterministic`, never atomics). Basic
    indices (ints, slices) pick each element at most once, so a plain assignment suffices.
    """

    @staticmethod
    def forward(ctx, x, *, index):
        ctx.input_shape = x.shape
        if type(x) is not np.ndarray:
            index = _on_device(index, get_array_module(x))
        ctx.index = index
        try:
            return x[index]
        except IndexError as error:
            raise IndexError(f"getitem: index {index!r} is invalid for a tensor of shape {x.shape}: {error}") from None
        except TypeError:
            _refuse_device_index(x, index)
            raise

    @staticmethod
    def backward(ctx, grad):
        index = ctx.index
        xp = get_array_module(grad)
        full = xp.zeros(ctx.input_shape, dtype=grad.dtype)
        if not _has_integer_array(index):
            full[index] = grad
        elif xp is np:
            np.add.at(full, index, grad)  # the CPU's fast path; the same sums in the same order
        else:
            scatter_add_deterministic(full, index, grad)
        return full
