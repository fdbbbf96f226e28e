"""The backward engine: ordering, summing, unbroadcasting, freeing, accumulation."""

from __future__ import annotations

import gc
import threading
import weakref

import numpy as np
import pytest

import kinone.autograd as ag
from kinone.autograd import Function, enable_grad, is_grad_enabled, no_grad, tensor


def test_a_100000_op_chain_backpropagates_without_recursion():
    x = tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.backward()
    assert x.grad.item() == 1.0


def test_gradients_meeting_at_a_node_are_summed_before_it_runs():
    x = tensor(np.array([2.0]), requires_grad=True)
    a = x * 3  # used by two paths below
    y = a * a + a.exp() + a
    y.sum().backward()
    expected = 3 * (2 * 6 + np.exp(6) + 1)
    np.testing.assert_allclose(x.grad.data, [expected])


def test_broadcast_gradients_are_reduced_to_each_inputs_shape():
    a = tensor(np.ones((2, 3, 4)), requires_grad=True)
    b = tensor(np.ones((3, 1)), requires_grad=True)
    c = tensor(np.ones(()), requires_grad=True)
    (a * b + c).sum().backward()
    assert b.grad.shape == (3, 1) and np.all(b.grad.data == 8)
    assert c.grad.shape == () and c.grad.item() == 24
    assert a.grad.shape == (2, 3, 4)


def test_grad_accumulates_across_backward_calls_until_cleared():
    x = tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    assert x.grad.data.tolist() == [6, 6]
    x.zero_grad()
    assert x.grad is None
    (x * 1).sum().backward()
    assert x.grad.data.tolist() == [1, 1]


def test_leaf_grad_is_its_own_array_not_a_view_of_the_flowing_gradient():
    x = tensor([1.0, 2.0], requires_grad=True)
    y = tensor([3.0, 4.0], requires_grad=True)
    (x + y).sum().backward()  # Add returns the same array for both inputs
    x.grad.data += 100
    assert y.grad.data.tolist() == [1, 1]


def test_retain_graph_allows_a_second_backward():
    x = tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.data.tolist() == [4, 8]


def test_second_backward_through_a_freed_graph_raises():
    x = tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time.*retain_graph=True"):
        y.backward()


def test_saved_arrays_are_freed_as_backward_walks_the_graph():
    x = tensor(np.ones(3), requires_grad=True)
    h = x.exp()
    y = (h * h).sum()
    nodes = [y.grad_fn, h.grad_fn]
    y.backward()
    assert all(node.saved_arrays is None and node.edges is None for node in nodes)


def test_nodes_do_not_keep_intermediate_tensors_alive():
    x = tensor(np.ones(3), requires_grad=True)
    h = x + 1
    ref = weakref.ref(h)
    y = (h * 2).sum()  # Mul by a constant saves nothing of h's
    del h
    gc.collect()
    assert ref() is None
    y.backward()
    assert x.grad.data.tolist() == [2, 2, 2]


def test_non_scalar_backward_needs_an_explicit_gradient():
    x = tensor(np.ones((2, 2)), requires_grad=True)
    y = x * 2
    with pytest.raises(
        RuntimeError, match=r"grad can be implicitly created only for scalar outputs; got shape \(2, 2\)"
    ):
        y.backward()
    y.backward(np.full((2, 2), 0.5))
    assert np.all(x.grad.data == 1)
    with pytest.raises(RuntimeError, match=r"grad has shape \(3,\) but the tensor has shape \(2, 2\)"):
        (x * 2).backward(np.ones(3))


def test_backward_on_a_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tensor([1.0]).sum().backward()


def test_backward_on_a_leaf_accumulates_into_it():
    x = tensor(np.array(3.0), requires_grad=True)
    x.backward()
    assert x.grad.item() == 1.0


def test_inputs_that_do_not_require_grad_get_no_gradient():
    w = tensor([1.0, 2.0], requires_grad=True)
    c = tensor([3.0, 4.0])
    (w * c).sum().backward()
    assert c.grad is None and w.grad.data.tolist() == [3, 4]


def test_a_branch_that_returns_no_gradient_still_releases_its_parents():
    # The Where condition gets no gradient; the node below it must still let `a` run.
    class NoGrad(Function):
        """y = x (gradient deliberately dropped);  dL/dx = None."""

        @staticmethod
        def forward(ctx, x):
            return x.copy()

        @staticmethod
        def backward(ctx, grad):
            return None

    x = tensor([1.0, 2.0], requires_grad=True)
    a = x * 2
    y = NoGrad.apply(a) + a * 3
    y.sum().backward()
    assert x.grad.data.tolist() == [6, 6]


def test_needs_input_grad_is_visible_to_forward_and_backward():
    seen = {}

    class Probe(Function):
        """y = a * b;  dL/da = g * b,  dL/db = g * a."""

        @staticmethod
        def forward(ctx, a, b):
            seen["forward"] = ctx.needs_input_grad
            return a * b

        @staticmethod
        def backward(ctx, grad):
            return grad, None

    a = tensor([1.0], requires_grad=True)
    Probe.apply(a, tensor([2.0])).sum().backward()
    assert seen["forward"] == (True, False)
    with no_grad():
        Probe.apply(a, tensor([2.0]))
    assert seen["forward"] == (False, False)


def test_backward_returning_the_wrong_number_of_gradients_is_reported():
    class Broken(Function):
        """y = a + b;  dL/da = g (and, wrongly, nothing for b)."""

        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, grad):
            return (grad,)

    a = tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="Broken.backward returned 1 gradients for 2 inputs"):
        Broken.apply(a, a).sum().backward()


def test_unbroadcast():
    g = np.ones((2, 3, 4))
    assert ag.unbroadcast(g, (3, 1)).shape == (3, 1) and np.all(ag.unbroadcast(g, (3, 1)) == 8)
    assert ag.unbroadcast(g, ()).item() == 24
    with pytest.raises(RuntimeError, match="cannot be reduced"):
        ag.unbroadcast(g, (5,))


# ---------------------------------------------------------------------- grad modes
def test_no_grad_records_nothing():
    x = tensor([1.0], requires_grad=True)
    with no_grad():
        assert not is_grad_enabled()
        y = x * 2
    assert is_grad_enabled()
    assert y.grad_fn is None and not y.requires_grad


def test_enable_grad_inside_no_grad_and_nesting_restores():
    x = tensor([1.0], requires_grad=True)
    with no_grad():
        with enable_grad():
            y = x * 2
        with no_grad():
            pass
        assert not is_grad_enabled()
    assert y.requires_grad


def test_grad_modes_as_decorators():
    @no_grad()
    def infer(t):
        return t * 2

    @enable_grad()
    def train(t):
        return t * 2

    x = tensor([1.0], requires_grad=True)
    assert not infer(x).requires_grad
    with no_grad():
        assert train(x).requires_grad
    with ag.set_grad_enabled(False):
        assert not (x * 1).requires_grad


def test_grad_mode_is_per_thread():
    seen = []
    with no_grad():
        thread = threading.Thread(target=lambda: seen.append(is_grad_enabled()))
        thread.start()
        thread.join()
    assert seen == [True]


def test_integer_inputs_never_record():
    i = tensor([1, 2])
    assert (i + i).grad_fn is None


def test_adopted_gradients_never_alias_each_other_or_saved_arrays():
    # x and y receive the same array from Add; z's gradient is adopted without a copy.
    x = tensor([1.0, 2.0], requires_grad=True)
    y = tensor([3.0, 4.0], requires_grad=True)
    w = tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    loss = ((x + y) @ w).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    assert x.grad.data.tolist() == [2, 2] and y.grad.data.tolist() == [2, 2]
    assert w.grad.data.tolist() == [[8, 8], [12, 12]]
    assert not np.shares_memory(x.grad.data, y.grad.data)
