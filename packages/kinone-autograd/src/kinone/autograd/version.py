"""Version counters: how backward knows that an array it saved was changed in place.

Ops save NumPy arrays, often the input's own array (Mul saves `w.data` itself), so an
in-place change between forward and backward (an optimizer step, `init`, `load_state_dict`)
would silently give wrong gradients. As in PyTorch:

- every tensor has a version, `t._version` (0 when created); every in-place change Kinone
  makes calls `increment_version(t)`;
- a view shares its base's counter (`w.T`, `w.reshape(...)`, `w[1:]`, `w.detach()`), since
  changing one changes the other;
- when `Function.apply` records a node, it notes the counter and version of every input (or
  output) whose array the op saved, or saved a view of;
- backward checks those versions before running the node and raises one line naming the op,
  which input or output, its shape, and both versions.

Writes to `.data` by the user (`w.data -= lr * w.grad.data`) are PyTorch's untracked path:
no version is bumped, as in PyTorch.

Counters are created lazily: a tensor holds `None` until it is saved, viewed or changed,
so the common op (whose output nobody changes) allocates nothing extra.
"""

from __future__ import annotations


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
    """If `out`'s array is a view of an input's array, let them share one counter."""
    base = out.data.base
    for t in inputs:
        data = t.data
        if base is data or base is data.base:
            out._version_counter = counter_of(t)
            return


def _source(array, tensors):
    """The position of the tensor in `tensors` whose array is `array`, or whose memory
    `array` views; None if there is none."""
    base = getattr(array, "base", None)
    for position, t in enumerate(tensors):
        data = t.data
        if array is data or (base is not None and (base is data or base is data.base)):
            return position
    return None


def saved_versions(saved: tuple, inputs: tuple, out) -> tuple | None:
    """For each saved array that is (a view of) an input's or the output's array, the record
    `(label, position, shape, counter, version)` that `check_saved_versions` compares."""
    records = []
    for array in saved:
        if array is None:
            continue
        position = _source(array, inputs)
        if position is not None:
            t, label = inputs[position], "input"
        elif _source(array, (out,)) is not None:
            t, label, position = out, "output", 0
        else:
            continue
        counter = counter_of(t)
        records.append((label, position, t.data.shape, counter, counter.value))
    return tuple(records) if records else None


def check_saved_versions(node) -> None:
    """Raise if an array `node` saved was changed in place since the forward."""
    for label, position, shape, counter, version in node.saved_versions:
        if counter.value != version:
            name = type(node).__name__
            raise RuntimeError(
                f"{name}: one of the variables needed for gradient computation has been modified by an "
                f"in-place operation: {name} saved {label} {position} of shape {tuple(shape)} at version "
                f"{version}; it is now at version {counter.value} (an optimizer step, init or "
                "load_state_dict between this forward and its backward?)"
            )
