"""`Tensor.register_post_accumulate_grad_hook`: called once per backward, as soon as the
leaf's gradient of the pass is complete (while the rest of backward still runs)."""

from __future__ import annotations

import numpy as np
import pytest

from kinone.autograd import Tensor


def leaf(*shape, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def test_hook_sees_the_whole_gradient_of_a_leaf_used_twice():
    w, x = leaf(3), leaf(3, seed=1)
    seen = []
    w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.data.copy()))
    ((w * x).sum() + (w * w).sum()).backward()
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], x.data + 2 * w.data)


def test_hook_runs_before_backward_reaches_earlier_layers():
    w1, w2, x = leaf(4, 4), leaf(4, 4, seed=1), leaf(2, 4, seed=2)
    order = []
    w2.register_post_accumulate_grad_hook(lambda t: order.append(("w2", w1.grad is None)))
    w1.register_post_accumulate_grad_hook(lambda t: order.append(("w1", t.grad is not None)))
    ((x @ w1).tanh() @ w2).sum().backward()
    assert order == [("w2", True), ("w1", True)]  # w2 done while w1 had no gradient yet


def test_hook_runs_every_pass_and_sees_the_accumulated_gradient():
    w = leaf(3)
    grads = []
    w.register_post_accumulate_grad_hook(lambda t: grads.append(t.grad.data.copy()))
    y = (w * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(grads[0], 2.0)
    np.testing.assert_allclose(grads[1], 4.0)


def test_removed_hook_is_not_called_and_results_are_unchanged():
    w = leaf(3)
    calls = []
    handle = w.register_post_accumulate_grad_hook(lambda t: calls.append(1))
    handle.remove()
    handle.remove()  # twice is harmless
    (w * w).sum().backward()
    assert calls == [] and np.allclose(w.grad.data, 2 * w.data)


def test_hook_on_a_root_leaf_and_a_leaf_without_gradient():
    w, unused = leaf(1), leaf(2)
    calls = []
    w.register_post_accumulate_grad_hook(lambda t: calls.append("w"))
    unused.register_post_accumulate_grad_hook(lambda t: calls.append("unused"))
    w.backward(np.ones(1))
    (w * 3).sum().backward()
    assert calls == ["w", "w"]


def test_only_leaves_that_require_grad_take_hooks():
    w = leaf(2)
    with pytest.raises(RuntimeError, match="only leaf tensors"):
        (w * 2).register_post_accumulate_grad_hook(print)
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(np.ones(2)).register_post_accumulate_grad_hook(print)
    with pytest.raises(TypeError, match="must be callable"):
        w.register_post_accumulate_grad_hook(3)
