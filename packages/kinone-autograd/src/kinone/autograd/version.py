"""Version counters: how backward knows that an array it saved was changed in place.

Ops save NumPy arrays, often the input's own array (Mul saves `w.data` itself), so an
in-place change between forward and backward (an optimizer step, `init`, `load_state_dict`)
would silently give wrong gradients. As in PyTorch:

- every tensor has a version, `t._version` (0 when created); every in-place change Kinone
  makes calls `increment_version(t)`;
- a view shares its base's counter (`w.T`, `w.reshape(...)`, `w[1:]`, `w.detach()`), since
  changing one changes the other;
- when `Function.apply` records a node, it notes the counter and version of every tracked
  input whose array the op saved, or saved a view of (tracked: leaves, and tensors that
  already have a counter; see `saved_versions`);
- an intermediate result's array saved by a node is tracked too (it may be changed by an
  in-place method, `y.mul_(2)`), and so is a node's own saved output: the in-place method
  notes its version on the node before changing it (`note_saved_output`);
- backward checks those versions before running the node and raises one line naming the op,
  which input (or its output), its shape, and both versions.

Writes to `.data` by the user (`w.data -= lr * w.grad.data`) are PyTorch's untracked path:
no version is bumped, as in PyTorch.

Counters are created lazily: a tensor holds `None` until it is changed, or saved or viewed
while a leaf, so an op on intermediate results allocates nothing extra.
"""

from __future__ import annotations

import numpy as np

from .backend import is_cuda_array


class VersionCounter:
    """How many in-place changes the array behind one or more tensors has had."""

    __slots__ = ("value",)

    def __init__(self, value: int = 0):
        self.value = value


def counter_of(tensor) -> VersionCounter:
    """The tensor's counter, created on first use."""
    counter = tensor._version_counter
    if counter is None:
        counter = tensor._version_counter = VersionCounter()
    return counter


def increment_version(tensor) -> None:
    """Record one in-place change of `tensor`'s array (as torch.autograd.graph.increment_version)."""
    counter_of(tensor).value += 1


def share_view_counter(out, inputs) -> None:
    """If `out`'s array is a view of a tracked input's array, let them share one counter."""
    base = out.data.base
    for t in inputs:
        data = t.data
        if base is data or base is data.base:
            if t._version_counter is not None or t.grad_fn is None:
                out._version_counter = counter_of(t)
            return


def saved_versions(saved: tuple, inputs: tuple) -> tuple | None:
    """`(position, counter, version)` for each tracked input whose array the op saved, or
    saved a view of (None when there is none).

    Tracked: leaves (parameters, buffers, data, gradients), any tensor that already has a
    counter (a view of a leaf, or a tensor bumped before), and an intermediate result whose
    own array was saved (the in-place methods can change one; a view of an intermediate saved
    by an op is not looked for: that check costs more than the rest of this function).
    Written as plain loops: this runs for every recorded op that saves arrays.
    """
    records = None
    position = -1
    for t in inputs:
        position += 1
        counter = t._version_counter
        data = t.data
        if counter is None and t.grad_fn is not None:
            for array in saved:
                if array is data:
                    break
            else:
                continue
            counter = t._version_counter = VersionCounter()
        else:
            if counter is None:
                counter = t._version_counter = VersionCounter()
            for array in saved:
                if array is data:
                    break
            else:
                if not _saves_view_of(saved, data):
                    continue
        record = (position, counter, counter.value)
        records = (record,) if records is None else records + (record,)
    return records


def _saves_view_of(saved: tuple, data: np.ndarray) -> bool:
    """Whether a saved array is a view of `data` (or of the array `data` itself views)."""
    for array in saved:
        if type(array) is np.ndarray or is_cuda_array(array):
            base = array.base
            if base is not None and (base is data or base is data.base):
                return True
    return False


def note_saved_output(node, tensor) -> None:
    """Before `tensor` (made by `node`) changes in place: if `node` saved its array (Exp, Tanh,
    Sigmoid save their output), record the version so that its backward refuses the new one."""
    saved = node.saved_arrays
    if not saved:
        return
    data = tensor.data
    for array in saved:
        if array is data:
            break
    else:
        if not _saves_view_of(saved, data):
            return
    counter = counter_of(tensor)
    versions = node.saved_versions or ()
    for position, known, _ in versions:
        if known is counter and position == OUTPUT:
            return
    node.saved_versions = versions + ((OUTPUT, counter, counter.value),)


OUTPUT = "output"  # the position recorded by note_saved_output


def modified_error(node, position, version: int, now: int) -> RuntimeError:
    """The error backward raises when `node`'s saved input `position` (or its output) changed in place."""
    name = type(node).__name__
    if position == OUTPUT:
        what = "its output"
    else:
        what = f"input {position} of shape {tuple(node.input_shapes[position])}"
    return RuntimeError(
        f"{name}: one of the variables needed for gradient computation has been modified by an "
        f"in-place operation: {name} saved {what} at version {version}; it is now at version {now} "
        "(an in-place op, optimizer step, init or load_state_dict between this forward and its backward?)"
    )
