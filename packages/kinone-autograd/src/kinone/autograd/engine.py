"""The backward engine: walks the graph from a tensor back to the leaves.

1. `topological_order` counts, for every node reachable from the root, how many nodes
   inside this graph consume its output (an explicit stack, no recursion: a 100,000-op
   chain is a loop, not a RecursionError).
2. Kahn's algorithm: a node runs only when every consumer has added its gradient into the
   node's buffer, so gradients that meet at a node are summed before they flow on.
3. Each gradient is reduced to its input's shape (`unbroadcast`) and dtype, then either
   accumulated into a leaf's `.grad` (under a lock: concurrent backward calls may share
   leaves) or added to the producing node's buffer.
4. Before a node runs, the versions of the arrays it saved are checked (`version.py`): an
   array changed in place since the forward raises an error instead of a wrong gradient.
5. Unless `retain_graph`, each node drops its saved arrays and edges once it has run, so
   memory is released as backward proceeds; a second backward raises a clear error.

A leaf with post-accumulate hooks (`Tensor.register_post_accumulate_grad_hook`) has its
gradient added into `.grad` as soon as the last node that uses it has run, and its hooks
called there, while the rest of backward goes on: data-parallel training overlaps the
reduction of that gradient with the remaining backward work.
"""

from __future__ import annotations

import threading

import numpy as np

from .backend import as_array, device_of, is_cuda_array, owns_writable_memory
from .function import Function
from .tensor import Tensor, _make_tensor
from .version import VersionCounter, modified_error

# Backward calls from several threads may reach the same leaf: its check-then-set of a first
# gradient and NumPy's `+=` (which releases the GIL on large arrays) must not interleave, or
# gradients are lost (measured before the lock: whole gradients and single entries lost with
# 4 threads). One lock around the accumulation steps only; the rest of backward runs in parallel.
_accumulate_lock = threading.Lock()


def unbroadcast(grad: np.ndarray, shape: tuple, op_name: str = "backward") -> np.ndarray:
    """Sum `grad` over the axes that broadcasting added or stretched, giving `shape`.

    Leading axes that the input did not have are summed away; axes where the input had
    size 1 and the gradient does not are summed with keepdims.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra < 0:
        raise RuntimeError(f"{op_name}: gradient of shape {grad.shape} has fewer dims than its input {shape}")
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, (s, g) in enumerate(zip(shape, grad.shape)) if s == 1 and g != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    if grad.shape != shape:
        raise RuntimeError(
            f"{op_name}: backward produced a gradient of shape {grad.shape} "
            f"that cannot be reduced to the input's shape {shape}"
        )
    return grad


def _freed_graph_error(node: Function) -> RuntimeError:
    return RuntimeError(
        f"{type(node).__name__}: trying to backward through the graph a second time "
        "(its saved arrays were freed after the first backward); "
        "call backward(retain_graph=True) the first time if you need to"
    )


def topological_order(root: Function) -> dict:
    """Map each node reachable from `root` to the number of its consumers in this graph."""
    consumers: dict = {root: 0}
    stack = [root]
    while stack:
        node = stack.pop()
        edges = node.edges
        if edges is None:
            raise _freed_graph_error(node)
        for parent in edges:
            if isinstance(parent, Function):
                if parent in consumers:
                    consumers[parent] += 1
                else:
                    consumers[parent] = 1
                    stack.append(parent)
    return consumers


def _accumulate_leaf(leaf: Tensor, grad: np.ndarray, exclusive: bool) -> None:
    """Add `grad` into `leaf.grad`. A leaf's first gradient is stored as is only when it is
    `exclusive` (an array no one else holds); otherwise it is copied, since it may be a view
    of another gradient or the same array as a sibling input's (Add returns g twice).
    Adding into an existing `.grad` is an in-place change: it bumps that tensor's version.
    The caller holds `_accumulate_lock`."""
    current = leaf.grad
    if current is None:
        if not exclusive:
            grad = grad.astype(leaf.data.dtype, copy=True)
        leaf.grad = _make_tensor(grad, False, None)
    else:
        current.data += grad
        counter = current._version_counter
        if counter is None:
            current._version_counter = VersionCounter(1)
        else:
            counter.value += 1


def _accumulate_leaves(leaf_grads: dict, exclusive: set) -> None:
    """Accumulate each leaf's gradient of this pass, under the lock (once per pass)."""
    with _accumulate_lock:
        for leaf, grad in leaf_grads.items():
            _accumulate_leaf(leaf, grad, leaf in exclusive)


class _HookHandle:
    """Returned by `register_post_accumulate_grad_hook`: `remove()` unregisters the hook."""

    def __init__(self, tensor: Tensor, hook):
        self._tensor, self._hook = tensor, hook

    def remove(self) -> None:
        global _hooked_leaves
        hooks = getattr(self._tensor, "_post_accumulate_hooks", None)
        if hooks and self._hook in hooks:
            hooks.remove(self._hook)
            if not hooks:
                self._tensor._post_accumulate_hooks = None
                _hooked_leaves -= 1


# How many leaves have hooks, over all tensors: backward looks for hooked leaves only when
# some exist, so a graph without hooks pays nothing for them.
_hooked_leaves = 0


def add_post_accumulate_hook(tensor: Tensor, hook) -> _HookHandle:
    global _hooked_leaves
    if not callable(hook):
        raise TypeError(f"register_post_accumulate_grad_hook: hook must be callable, got {type(hook).__name__}")
    hooks = getattr(tensor, "_post_accumulate_hooks", None)
    if not hooks:
        tensor._post_accumulate_hooks = hooks = []
        _hooked_leaves += 1
    hooks.append(hook)
    return _HookHandle(tensor, hook)


def backward(root: Tensor, grad=None, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf), weighted by `grad`, into every leaf's `.grad`."""
    if not root.requires_grad:
        raise RuntimeError(
            "backward: this tensor does not require grad and has no grad_fn "
            "(was it created under no_grad, or from inputs that do not require grad?)"
        )
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward: grad can be implicitly created only for scalar outputs; got shape {root.shape}. "
                "Pass grad= of the same shape, or reduce the tensor (e.g. .sum()) first"
            )
        grad = np.ones_like(root.data)
    else:
        if isinstance(grad, Tensor):
            grad = grad.data
        elif not is_cuda_array(grad):  # host data (an array, a list, a number) follows the tensor
            grad = as_array(np.asarray(grad, dtype=root.data.dtype), root.data)
        if device_of(grad) != device_of(root.data):
            raise RuntimeError(f"backward: grad is on {device_of(grad)} but the tensor is on {device_of(root.data)}")
        if grad.shape != root.data.shape:
            raise RuntimeError(f"backward: grad has shape {grad.shape} but the tensor has shape {root.shape}")

    if root.grad_fn is None:
        _accumulate_leaves({root: grad}, set())
        if getattr(root, "_post_accumulate_hooks", None):
            for hook in list(root._post_accumulate_hooks):
                hook(root)
        return

    pending = topological_order(root.grad_fn)
    hooked = _HookedLeaves(pending) if _hooked_leaves else None
    grads_in = _GradientBuffers(root.grad_fn, grad, retain_graph)
    buffers, owned, stored = grads_in.buffers, grads_in.owned, grads_in.stored
    ready = [root.grad_fn]
    # This loop runs once per node and its inner loop once per edge: calls are kept to the
    # rare branches (measured: a call per node and per edge cost 7% of the per-op backward).
    while ready:
        node = ready.pop()
        node_grad = buffers.pop(node, None)  # step 2: every consumer has added its gradient
        if node_grad is None:  # none reached it: it still counts as done for its parents
            grads = (None,) * len(node.edges)
        else:
            owned.discard(node)
            if node.saved_versions is not None:  # step 4
                _check_saved_versions(node)
            grads = node.backward(node, node_grad)
            if type(grads) is not tuple:
                grads = (grads,)
            if len(grads) != len(node.edges):
                raise _gradient_count_error(node, grads)
        for parent, g, shape, dtype in zip(node.edges, grads, node.input_shapes, node.input_dtypes):
            if parent is None:
                continue
            is_node = isinstance(parent, Function)
            if g is not None:  # step 3: to the input's shape and dtype, then on
                if g.shape != shape:
                    g = unbroadcast(g, shape, type(node).__name__)
                if g.dtype != dtype:
                    g = g.astype(dtype)
                if not is_node:
                    grads_in.add_to_leaf(parent, g)
                elif parent not in buffers:  # the first gradient for that node: kept as it is
                    buffers[parent] = g
                    stored.add(id(g))
                else:
                    grads_in.add_to_node(parent, g)
            if is_node:
                pending[parent] -= 1
                if pending[parent] == 0:
                    ready.append(parent)
            elif hooked is not None:
                hooked.used(parent, g is not None, grads_in)
        if not retain_graph:  # step 5
            node.saved_arrays = None
            node.edges = None
    grads_in.accumulate_leaves()


def _check_saved_versions(node: Function) -> None:
    """Raise if an array the node saved was changed in place since its forward."""
    for position, counter, version in node.saved_versions:
        if counter.value != version:
            raise modified_error(node, position, version, counter.value)


def _gradient_count_error(node: Function, grads: tuple) -> RuntimeError:
    return RuntimeError(f"{type(node).__name__}.backward returned {len(grads)} gradients for {len(node.edges)} inputs")


class _GradientBuffers:
    """Where the gradients of one backward pass wait: a buffer per node (summed as consumers
    add to it) and, for a leaf without a `.grad`, a sum received once at the end of the pass.

    It avoids copies where that is safe: a node's buffer is added to in place once it holds
    an array allocated in this pass (`owned`), and a leaf keeps its first gradient without a
    copy only if the array owns its memory and was never stored before (`stored`: the ids of
    every array this pass has stored). That skipped copy is a full pass over every weight
    gradient (measured 4% of an MLP step); a reused id only costs a copy, never correctness.
    One lock per leaf and pass, not per edge: the lock per edge cost 4% of the per-op
    benchmark, where two leaves feed 667 of 1,000 nodes. A leaf that has a `.grad` already
    is added to at once, so accumulating over steps holds no second copy.
    """

    __slots__ = ("buffers", "exclusive", "leaf_grads", "owned", "retain_graph", "stored")

    def __init__(self, root: Function, grad, retain_graph: bool):
        self.buffers = {root: grad}
        self.owned: set = set()  # nodes whose buffer was allocated here
        self.stored = {id(grad)}
        self.leaf_grads: dict = {}
        self.exclusive: set = set()  # leaves whose gradient in leaf_grads no one else holds
        self.retain_graph = retain_graph

    def add_to_node(self, node: Function, g) -> None:
        """A further gradient for a node that has a buffer: summed, in place once it is ours."""
        buffers = self.buffers
        if node in self.owned:
            buffers[node] += g
        else:
            buffers[node] = total = buffers[node] + g
            self.stored.add(id(total))
            self.owned.add(node)

    def add_to_leaf(self, leaf: Tensor, g) -> None:
        """Sum `g` into the leaf's gradient of this pass (or into its `.grad` now, if it has one)."""
        leaf_grads, exclusive, stored = self.leaf_grads, self.exclusive, self.stored
        if leaf in leaf_grads:
            if leaf in exclusive:
                leaf_grads[leaf] += g
            else:
                leaf_grads[leaf] = total = leaf_grads[leaf] + g
                stored.add(id(total))
                exclusive.add(leaf)
            return
        own = not self.retain_graph and id(g) not in stored and owns_writable_memory(g)
        if leaf.grad is None:
            if not own:  # copy now, as accumulating at once would: a view must not keep its base alive
                g = g.astype(leaf.data.dtype, copy=True)
            leaf_grads[leaf] = g
            exclusive.add(leaf)
        else:
            with _accumulate_lock:
                _accumulate_leaf(leaf, g, own)
        stored.add(id(g))

    def accumulate_leaf_now(self, leaf: Tensor) -> None:
        """Give `leaf` its sum of this pass at once (its hooks are about to run)."""
        if leaf in self.leaf_grads:
            with _accumulate_lock:
                _accumulate_leaf(leaf, self.leaf_grads.pop(leaf), leaf in self.exclusive)

    def accumulate_leaves(self) -> None:
        if self.leaf_grads:
            _accumulate_leaves(self.leaf_grads, self.exclusive)


class _HookedLeaves:
    """The leaves with post-accumulate hooks in this graph, and how many of its edges lead
    to each: when the last has been followed, the leaf's gradient of the pass is complete."""

    def __init__(self, pending: dict):
        self.uses: dict = {}
        for node in pending:
            for parent in node.edges:
                if isinstance(parent, Tensor) and getattr(parent, "_post_accumulate_hooks", None):
                    self.uses[parent] = self.uses.get(parent, 0) + 1
        self.reached: set = set()  # those that received some gradient in this pass

    def used(self, leaf: Tensor, got_gradient: bool, grads_in: _GradientBuffers) -> None:
        if leaf not in self.uses:
            return
        if got_gradient:
            self.reached.add(leaf)
        self.uses[leaf] -= 1
        if self.uses[leaf] == 0 and leaf in self.reached:
            grads_in.accumulate_leaf_now(leaf)
            for hook in list(leaf._post_accumulate_hooks or ()):
                hook(leaf)
