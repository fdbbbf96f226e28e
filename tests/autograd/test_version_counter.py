"""Version counters: an in-place change bumps a tensor's `_version`, and backward refuses to
use an array that changed after its op saved it (PyTorch's "modified by an inplace operation").
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from kinone.autograd import Function, Tensor, no_grad, tensor


def leaf(*shape, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


MODIFIED = re.compile(r"modified by an in-place operation")


def test_new_tensors_start_at_version_0():
    assert tensor([1.0, 2.0])._version == 0
    assert (leaf(3) * 2.0)._version == 0


def test_bump_version_counts_in_place_changes():
    w = leaf(3)
    w._bump_version()
    w._bump_version()
    assert w._version == 2


def test_backward_after_in_place_change_of_a_saved_input_raises():
    w, x = leaf(3, 4), leaf(3, 4, seed=1)
    y = (w * x).sum()
    w.data += 1.0  # what an optimizer step does to the array...
    w._bump_version()  # ... and the version it bumps
    with pytest.raises(RuntimeError, match=MODIFIED) as info:
        y.backward()
    message = str(info.value)
    assert "\n" not in message
    assert "Mul" in message and "input 0" in message and "(3, 4)" in message
    assert "version 0" in message and "version 1" in message


def test_the_error_names_which_input_changed():
    w, x = leaf(2, 3), leaf(3, 4, seed=1)
    y = (w @ x).sum()
    x._bump_version()
    with pytest.raises(
        RuntimeError, match=r"MatMul saved input 1 of shape \(3, 4\) at version 0; it is now at version 1"
    ):
        y.backward()


def test_a_view_shares_its_base_version():
    """`w.T` is a view of w's array: an update of w changes what MatMul saved from the view."""
    w, x = leaf(4, 3), leaf(2, 3, seed=1)
    y = (x @ w.T).sum()
    w._bump_version()
    with pytest.raises(RuntimeError, match=MODIFIED):
        y.backward()


def test_views_of_views_and_detach_share_the_counter():
    w = leaf(2, 3)
    view = w.reshape(6)[1:4]
    detached = w.detach()
    w._bump_version()
    assert view._version == detached._version == w._version == 1
    detached._bump_version()
    assert w._version == 2


def test_a_copy_does_not_share_the_counter():
    w = leaf(2, 3)
    doubled = w * 2.0
    w._bump_version()
    assert doubled._version == 0


def test_change_of_an_input_that_was_not_saved_is_allowed():
    """Add saves nothing: changing its inputs later cannot corrupt its backward."""
    w, b = leaf(3), leaf(3, seed=1)
    y = (w + b).sum()
    b._bump_version()
    y.backward()
    np.testing.assert_array_equal(w.grad.data, np.ones(3))


def test_change_before_the_forward_is_allowed():
    w = leaf(3)
    w._bump_version()
    (w * w).sum().backward()
    np.testing.assert_allclose(w.grad.data, 2 * w.data)


def test_retained_graph_is_checked_on_every_backward():
    w = leaf(3)
    y = (w * w).sum()
    y.backward(retain_graph=True)
    w._bump_version()
    with pytest.raises(RuntimeError, match=MODIFIED):
        y.backward()


def test_data_writes_are_untracked_as_in_pytorch():
    """`w.data -= lr * w.grad.data` (the README's loop) is outside the graph: no version bump."""
    w = leaf(3)
    y = (w * w).sum()
    with no_grad():
        w.data -= 0.0
    assert w._version == 0
    y.backward()


def test_an_intermediate_that_was_bumped_before_is_tracked():
    """Intermediates are tracked once they have a counter (Kinone itself changes only leaves)."""
    w, x = leaf(3), leaf(3, seed=1)
    y = w * 2.0
    y._bump_version()
    loss = (y * x).sum()
    y._bump_version()
    with pytest.raises(RuntimeError, match=r"Mul saved input 0 of shape \(3,\) at version 1; it is now at version 2"):
        loss.backward()


def test_custom_function_saving_a_view_of_its_input_is_checked():
    class FirstRowScale(Function):
        """y = x[0] * 2;  dL/dx[0] = 2 g (a test op that saves a view of its input)."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x[0])
            return x[0] * 2

        @staticmethod
        def backward(ctx, grad):
            (row,) = ctx.saved
            out = np.zeros((2,) + row.shape, dtype=grad.dtype)
            out[0] = 2 * grad
            return out

    x = leaf(2, 3)
    y = FirstRowScale.apply(x).sum()
    x._bump_version()
    with pytest.raises(RuntimeError, match=r"FirstRowScale saved input 0 of shape \(2, 3\)"):
        y.backward()


def test_in_place_change_of_the_grad_on_accumulation_bumps_its_version():
    w = leaf(3)
    (w * 1.0).sum().backward()
    first = w.grad
    assert first._version == 0
    (w * 1.0).sum().backward()
    assert w.grad is first and first._version == 1
