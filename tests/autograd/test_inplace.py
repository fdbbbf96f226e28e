"""In-place Tensor methods (`add_ sub_ mul_ div_ zero_ fill_ copy_ clamp_ uniform_ normal_`, `+= -= *= /=`):
PyTorch's rules for leaves, non-leaves and no_grad, version bumps, dtypes, devices and tracing."""

from __future__ import annotations

import re

import numpy as np
import pytest

from kinone.autograd import Tensor, backend, manual_seed, no_grad, tensor, trace
from kinone.autograd.ops import inplace

LEAF = re.compile(r"a leaf tensor that requires grad is being used in an in-place operation")
MODIFIED = re.compile(r"modified by an in-place operation")


def leaf(*shape, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def test_the_tutorial_sgd_loop_updates_the_parameters_and_the_model_learns():
    """PyTorch's "learning PyTorch with examples" loop: `p -= lr * p.grad` under no_grad changes p.
    Before the in-place operators it rebound the loop variable: the model never learned."""
    rng = np.random.default_rng(0)
    x = Tensor(np.linspace(-1, 1, 50))
    y = Tensor(np.sin(3 * x.data))
    a, b, c = (Tensor(rng.standard_normal(1), requires_grad=True) for _ in range(3))
    params = [a, b, c]
    first = None
    for _ in range(200):
        loss = ((a + b * x + c * x * x - y) ** 2).sum()
        first = loss.item() if first is None else first
        loss.backward()
        with no_grad():
            for p in params:
                p -= 1e-3 * p.grad
                p.grad = None
    assert params[0] is a
    assert loss.item() < 0.7 * first


def test_operators_keep_the_tensor_object_and_its_array():
    x = tensor([1.0, 2.0])
    data, before = x.data, x
    x += 1.0
    x -= tensor([0.5, 0.5])
    x *= 4.0
    x /= 2.0
    assert x is before and x.data is data
    np.testing.assert_allclose(x.data, [3.0, 5.0])


def test_methods_return_self_and_follow_pytorch_signatures():
    x = tensor([1.0, 2.0, 3.0])
    assert x.add_(tensor([1.0, 1.0, 1.0]), alpha=2) is x
    np.testing.assert_allclose(x.data, [3.0, 4.0, 5.0])
    x.sub_(1.0, alpha=2).mul_(2.0).div_(tensor([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(x.data, [2.0, 2.0, 2.0])
    np.testing.assert_allclose(x.clamp_(max=1.5).data, [1.5, 1.5, 1.5])
    np.testing.assert_allclose(x.fill_(7).data, [7.0, 7.0, 7.0])
    np.testing.assert_allclose(x.copy_(tensor([1.0, 2.0, 3.0])).data, [1.0, 2.0, 3.0])
    np.testing.assert_allclose(x.zero_().data, [0.0, 0.0, 0.0])


def test_a_leaf_that_requires_grad_is_refused_in_grad_mode():
    w = leaf(3)
    for change in (lambda: w.add_(1.0), lambda: w.mul_(2.0), lambda: w.zero_(), lambda: w.uniform_()):
        with pytest.raises(RuntimeError, match=LEAF):
            change()
    with pytest.raises(RuntimeError, match=LEAF):
        w += 1.0
    assert w._version == 0 and w.grad_fn is None


def test_a_view_of_a_leaf_that_requires_grad_is_refused():
    w = leaf(2, 3)
    with pytest.raises(RuntimeError, match="a view of a leaf tensor that requires grad"):
        w[0].add_(1.0)


def test_a_view_of_a_non_leaf_is_refused_with_kinones_reason():
    y = leaf(2, 3) * 2.0
    with pytest.raises(RuntimeError, match=r"add_: in-place change of a view \(GetItem\) .* not supported in Kinone"):
        y[0].add_(1.0)


def test_under_no_grad_a_leaf_changes_and_its_version_moves():
    w = leaf(3)
    before = w.data.copy()
    with no_grad():
        w.add_(1.0)
        w *= 2.0
    np.testing.assert_allclose(w.data, (before + 1.0) * 2.0)
    assert w._version == 2 and w.grad_fn is None and w.requires_grad


def test_an_update_between_forward_and_backward_raises():
    w, x = leaf(3, 4), leaf(3, 4, seed=1)
    loss = (w * x).sum()
    with no_grad():
        w.sub_(0.1 * x)
    with pytest.raises(RuntimeError, match=r"Mul saved input 0 of shape \(3, 4\) at version 0; it is now at version 1"):
        loss.backward()


def test_an_in_place_op_on_a_non_leaf_is_recorded():
    x, w = leaf(3), leaf(3, seed=1)
    y = x * 2.0
    old_node = y.grad_fn
    y.mul_(w)
    assert type(y.grad_fn) is inplace.MulInPlace and y.grad_fn.edges[0] is old_node
    y.add_(w, alpha=3.0)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, 2.0 * w.data)
    np.testing.assert_allclose(w.grad.data, 2.0 * x.data + 3.0)


def test_a_tensor_without_grad_changed_by_one_that_requires_grad_joins_the_graph():
    w = leaf(3)
    acc = tensor(np.zeros(3))
    acc.add_(w)
    acc.add_(w)
    assert acc.requires_grad and not acc.is_leaf
    acc.sum().backward()
    np.testing.assert_allclose(w.grad.data, [2.0, 2.0, 2.0])


def test_changing_a_saved_intermediate_raises():
    """y is saved by the Mul that makes z; changing y afterwards must not give z a wrong gradient."""
    x, w = leaf(3), leaf(3, seed=1)
    y = x * 2.0
    z = y * w
    y.mul_(2.0)
    with pytest.raises(RuntimeError, match=r"Mul saved input 0 of shape \(3,\)"):
        z.sum().backward()


def test_changing_a_saved_output_raises():
    """exp saves its output: changing it in place (even under no_grad) breaks exp's backward."""
    x = leaf(3)
    y = x.exp()
    with no_grad():
        y.add_(1.0)
    with pytest.raises(RuntimeError, match=r"Exp: .*Exp saved its output at version 0; it is now at version 1"):
        y.sum().backward()


def test_changing_an_unsaved_intermediate_is_fine():
    x = leaf(3)
    y = x + 1.0  # Add saves nothing
    y.mul_(3.0)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, [3.0, 3.0, 3.0])


def test_every_op_bumps_the_version_once():
    x = tensor(np.ones((2, 2)))
    ops = [
        lambda: x.add_(1.0),
        lambda: x.sub_(1.0),
        lambda: x.mul_(2.0),
        lambda: x.div_(2.0),
        lambda: x.zero_(),
        lambda: x.fill_(3.0),
        lambda: x.copy_(tensor([1.0, 2.0])),
        lambda: x.clamp_(0.0, 1.0),
        lambda: x.uniform_(),
        lambda: x.normal_(),
    ]
    for count, op in enumerate(ops, start=1):
        op()
        assert x._version == count


def test_a_view_shares_the_bump():
    w = leaf(2, 3)
    view = w.detach()[0]
    view.fill_(0.0)
    assert w._version == 1
    np.testing.assert_array_equal(w.data[0], [0.0, 0.0, 0.0])


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda i: i.add_(1.5), "result type Float can't be cast to the desired output type int64"),
        (lambda i: i.mul_(tensor([0.5, 0.5])), "result type Float can't be cast"),
        (lambda i: i.div_(2), "result type Float can't be cast"),
        (lambda i: i.add_(1, alpha=0.5), "alpha must not be a floating point number"),
        (lambda i: i.clamp_(0.5, 2.5), "result type Float can't be cast"),
        (lambda i: i.uniform_(), "only floating-point tensors"),
    ],
)
def test_integer_tensors_refuse_a_float_result(change, message):
    i = tensor([1, 2])
    with pytest.raises((RuntimeError, NotImplementedError), match=re.escape(message)):
        change(i)
    np.testing.assert_array_equal(i.data, [1, 2])


def test_dtype_is_kept():
    f = tensor([1.0, 2.0])  # float32
    f += Tensor(np.array([0.5, 0.5]))  # float64 other: cast into float32
    assert f.dtype == np.float32
    i = tensor([1, 2])
    i += 2
    i.fill_(1.7)  # fill_ and copy_ convert, as torch: truncation
    assert i.dtype == np.int64 and i.tolist() == [1, 1]
    i.copy_(tensor([2.9, 3.1]))
    assert i.tolist() == [2, 3]
    b = tensor([True, False])
    b += True
    assert b.tolist() == [True, True]
    with pytest.raises(RuntimeError, match="result type Long can't be cast to the desired output type bool"):
        b += 2


def test_the_result_keeps_the_tensors_shape():
    x = tensor(np.zeros((2, 3)))
    with pytest.raises(
        RuntimeError,
        match=r"add_: the other operand's shape \(4, 2, 3\) does not broadcast to the tensor's shape \(2, 3\)",
    ):
        x.add_(tensor(np.ones((4, 2, 3))))
    with pytest.raises(RuntimeError, match=r"copy_: .*\(2,\) does not broadcast"):
        x.copy_(tensor([1.0, 2.0]))


def test_argument_errors():
    x = tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match="clamp_: at least one of 'min' or 'max'"):
        x.clamp_()
    with pytest.raises(RuntimeError, match=r"fill_: only a 0-dimensional value tensor .* shape \(2,\)"):
        x.fill_(tensor([1.0, 2.0]))
    with pytest.raises(RuntimeError, match="uniform_: .*from=3 > to=2"):
        x.uniform_(3, 2)
    with pytest.raises(RuntimeError, match="normal_: expects std >= 0.0"):
        x.normal_(0, -1)
    with pytest.raises(NotImplementedError, match="rounding_mode='floor' is not supported"):
        x.div_(2.0, rounding_mode="floor")
    with pytest.raises(RuntimeError, match="sub_: subtraction with a bool tensor"):
        x.sub_(tensor([True, False]))


def test_random_fills_follow_the_seed_and_the_range():
    manual_seed(3)
    a = tensor(np.zeros(1000)).uniform_(2.0, 3.0)
    manual_seed(3)
    b = tensor(np.zeros(1000)).uniform_(2.0, 3.0)
    np.testing.assert_array_equal(a.data, b.data)
    assert 2.0 <= a.data.min() and a.data.max() < 3.0
    n = tensor(np.zeros(20000)).normal_(1.0, 2.0)
    assert abs(n.data.mean() - 1.0) < 0.1 and abs(n.data.std() - 2.0) < 0.1
    g = np.random.default_rng(5)
    c = tensor(np.zeros(4)).normal_(generator=g)
    np.testing.assert_array_equal(c.data, np.random.default_rng(5).standard_normal(4))


def test_tracing_reports_the_in_place_op_with_the_tensor_as_its_output():
    x = tensor([1.0, 2.0])
    with no_grad(), trace() as records:
        x.add_(1.0).mul_(2.0)
    assert [r.function for r in records] == [inplace.AddInPlace, inplace.MulInPlace]
    assert records[0].output is x and records[0].inputs[0] is x


def test_on_the_standin_device():
    with backend.use_standin_cuda():
        x = leaf(3).cuda()
        w = leaf(3, seed=1).detach().cuda().requires_grad_()
        y = x * 1.0
        y.mul_(w).add_(1.0).clamp_(min=-5.0)
        y.sum().backward()
        assert y.is_cuda and w.grad.is_cuda
        with no_grad():
            w -= 0.1 * w.grad
            w.uniform_()
        assert w.is_cuda and w._version == 2
        with pytest.raises(RuntimeError, match=r"add_: expected both tensors on one device; got cuda:0 and cpu"):
            y.detach().add_(tensor([1.0, 1.0, 1.0]))
        cpu = tensor(np.zeros(3))
        cpu.copy_(y)  # copy_ moves its source, as torch's
        np.testing.assert_allclose(cpu.data, y.numpy())
