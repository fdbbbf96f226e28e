"""Bad input gets an error naming the operation, the shapes and what was expected."""

from __future__ import annotations

import numpy as np
import pytest

import kinone.autograd as ag
from kinone.autograd import Function, tensor


def test_matmul_shape_mismatch_names_the_op_and_both_shapes():
    a, b = ag.zeros(2, 3), ag.zeros(4, 5)
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\) are not aligned"):
        a @ b
    with pytest.raises(ValueError, match=r"matmul: batch dims of shapes \(2, 3, 4\) and \(5, 4, 2\)"):
        ag.zeros(2, 3, 4) @ ag.zeros(5, 4, 2)
    with pytest.raises(ValueError, match="at least 1 dim"):
        ag.zeros(()) @ ag.zeros(3)


@pytest.mark.parametrize(
    "op, name",
    [
        (lambda a, b: a + b, "add"),
        (lambda a, b: a - b, "sub"),
        (lambda a, b: a * b, "mul"),
        (lambda a, b: a / b, "div"),
        (lambda a, b: a**b, "pow"),
        (ag.maximum, "maximum"),
    ],
)
def test_broadcast_mismatch_names_the_op_and_both_shapes(op, name):
    with pytest.raises(ValueError, match=rf"{name}: shapes \(2, 3\) and \(4,\) cannot be broadcast together"):
        op(ag.ones(2, 3), ag.ones(4))


def test_backward_on_non_scalar_and_through_freed_graph():
    x = tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="only for scalar outputs"):
        (x * 2).backward()
    y = (x.exp()).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_requires_grad_on_integer_tensor():
    with pytest.raises(TypeError, match="requires_grad: only floating-point tensors"):
        ag.arange(3, requires_grad=True)


def test_shape_op_errors():
    x = ag.zeros(2, 3)
    with pytest.raises(
        ValueError, match=r"reshape: cannot reshape a tensor of shape \(2, 3\) \(6 elements\) into \(4, 2\)"
    ):
        x.reshape(4, 2)
    with pytest.raises(ValueError, match=r"expand: a tensor of shape \(2, 3\) cannot be expanded to \(4, 3\)"):
        x.expand(4, 3)
    with pytest.raises(ValueError, match="permute"):
        x.permute(0, 0)
    with pytest.raises(IndexError, match=r"sum: dim 2 is out of range for a tensor of 2 dims"):
        x.sum(dim=2)
    with pytest.raises(IndexError, match=r"getitem: index .* is invalid for a tensor of shape \(2, 3\)"):
        x[5]
    with pytest.raises(ValueError, match=r"cat: tensor 1 has shape \(2, 4\) but tensor 0 has shape \(3, 3\)"):
        ag.cat([ag.zeros(3, 3), ag.zeros(2, 4)])
    with pytest.raises(ValueError, match=r"stack: tensor 1 has shape"):
        ag.stack([ag.zeros(3), ag.zeros(2)])
    with pytest.raises(TypeError, match="where: the condition must be a boolean tensor"):
        ag.where(ag.ones(2), ag.ones(2), ag.ones(2))


def test_apply_rejects_non_tensor_positional_inputs():
    class Identity(Function):
        """y = x;  dL/dx = g."""

        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, grad):
            return grad

    with pytest.raises(TypeError, match="Identity: every positional input must be a Tensor, got list"):
        Identity.apply([1.0])


def test_gradcheck_requires_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="no input requires grad"):
        ag.gradcheck(lambda a: a * 2, [tensor([1.0])])
