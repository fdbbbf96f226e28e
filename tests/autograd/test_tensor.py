"""Tensor: construction, dtype rules, properties, operators and repr."""

from __future__ import annotations

import numpy as np
import pytest

import kinone.autograd as ag
from kinone.autograd import Tensor, tensor


def test_python_floats_become_float32_and_arrays_keep_their_dtype():
    assert tensor(1.5).dtype == np.float32
    assert tensor([[1.0, 2.0]]).dtype == np.float32
    assert tensor([1, 2]).dtype == np.int64
    assert tensor([True, False]).dtype == np.bool_
    assert tensor(np.zeros(3, dtype=np.float64)).dtype == np.float64
    assert tensor(np.zeros(3, dtype=np.float16)).dtype == np.float16
    assert tensor([1, 2], dtype=np.float64).dtype == np.float64


def test_tensor_copies_but_Tensor_wraps():
    data = np.zeros(3)
    copied, wrapped = tensor(data), Tensor(data)
    data[0] = 7
    assert copied.data[0] == 0 and wrapped.data[0] == 7


def test_python_scalars_take_the_tensors_dtype():
    x = tensor([1.0, 2.0])
    for y in (x * 2.0, 2.0 * x, x + 1, x / 3, 1 - x, x**2, 2**x, x * np.float64(2.0)):
        assert y.dtype == np.float32
    x64 = tensor(np.ones(2))
    assert (x64 * 2.0).dtype == np.float64
    assert (tensor([1, 2]) * 2).dtype == np.int64


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients; got dtype int64"):
        tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(TypeError, match="int64"):
        tensor([1, 2]).requires_grad_()


def test_properties():
    x = ag.zeros(2, 3, 4)
    assert x.shape == (2, 3, 4) and x.ndim == 3 and x.size() == (2, 3, 4) and x.numel() == 24 and x.dtype == np.float32
    assert ag.zeros((2, 3)).shape == (2, 3)
    assert isinstance(x.numpy(), np.ndarray) and x.numpy() is x.data
    assert tensor([[2.5]]).item() == 2.5
    assert len(x) == 2
    with pytest.raises(ValueError, match="one-element"):
        x.item()


def test_detach_shares_data_and_leaves_the_graph():
    x = tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2).detach()
    assert not y.requires_grad and y.grad_fn is None
    z = x.detach()
    z.data[0] = 5
    assert x.data[0] == 5


def test_factories():
    ag.manual_seed(0)
    a = ag.randn(3, 4)
    ag.manual_seed(0)
    assert np.array_equal(a.data, ag.randn(3, 4).data)
    assert a.dtype == np.float32
    u = ag.rand(1000)
    assert 0 <= u.data.min() and u.data.max() < 1
    assert ag.ones(2, dtype=np.float64).dtype == np.float64
    assert np.array_equal(ag.arange(5).data, np.arange(5)) and ag.arange(5).dtype == np.int64
    assert ag.arange(0, 1, 0.25).dtype == np.float32
    assert np.array_equal(ag.zeros_like(a).data, np.zeros((3, 4))) and ag.ones_like(a).dtype == np.float32
    assert ag.full((2, 2), 3.0).data.tolist() == [[3, 3], [3, 3]]
    assert ag.randn(2, requires_grad=True).requires_grad


def test_comparisons_return_boolean_tensors_outside_the_graph():
    x = tensor([1.0, 2.0, 3.0], requires_grad=True)
    for result, expected in [
        (x < 2, [True, False, False]),
        (x <= 2, [True, True, False]),
        (x > 2, [False, False, True]),
        (x >= 2, [False, True, True]),
        (x == 2, [False, True, False]),
        (x != 2, [True, False, True]),
        (x > tensor([0.0, 5.0, 0.0]), [True, False, True]),
    ]:
        assert result.dtype == np.bool_ and not result.requires_grad
        assert result.data.tolist() == expected


def test_tensors_are_hashable_and_numpy_defers_to_them():
    x = tensor([1.0, 2.0])
    assert {x: 1}[x] == 1
    y = np.array([2.0, 3.0]) * x  # ndarray on the left still gives a Tensor
    assert isinstance(y, Tensor) and y.data.tolist() == [2.0, 6.0]


def test_repr_shows_values_and_grad_fn():
    x = tensor([1.0, 2.0], requires_grad=True)
    assert repr(x) == "tensor([1., 2.], requires_grad=True)"
    assert repr(x * 2) == "tensor([2., 4.], grad_fn=<MulBackward>)"
    assert "dtype=float64" in repr(tensor(np.ones(1)))


def test_shape_methods_follow_pytorch():
    x = ag.randn(2, 3, 4)
    assert x.reshape(6, 4).shape == (6, 4) and x.reshape((4, -1)).shape == (4, 6) and x.view(-1).shape == (24,)
    assert x.permute(2, 0, 1).shape == (4, 2, 3) and x.permute((0, 2, 1)).shape == (2, 4, 3)
    assert x.transpose(0, 2).shape == (4, 3, 2) and x.T.shape == (4, 3, 2)
    assert x.unsqueeze(0).shape == (1, 2, 3, 4) and x.unsqueeze(-1).shape == (2, 3, 4, 1)
    assert ag.zeros(1, 3, 1).squeeze().shape == (3,) and ag.zeros(1, 3, 1).squeeze(0).shape == (3, 1)
    assert x.flatten().shape == (24,) and x.flatten(1).shape == (2, 12) and x.flatten(0, 1).shape == (6, 4)
    assert ag.zeros(3, 1).expand(2, 3, 4).shape == (2, 3, 4) and ag.zeros(3, 1).expand(-1, 5).shape == (3, 5)


def test_reductions_values():
    x = tensor(np.arange(12.0).reshape(3, 4))
    assert x.sum().item() == 66
    assert x.sum(dim=0).data.tolist() == [12, 15, 18, 21]
    assert x.mean(dim=1, keepdim=True).shape == (3, 1)
    assert x.amax(dim=-1).data.tolist() == [3, 7, 11] and x.amin(dim=0).data.tolist() == [0, 1, 2, 3]
    assert x.max().item() == 11 and x.min().item() == 0
    np.testing.assert_allclose(x.var(dim=1).data, np.var(x.data, axis=1, ddof=1))
    np.testing.assert_allclose(x.var(unbiased=False).data, np.var(x.data))
    np.testing.assert_allclose(x.logsumexp(dim=1).data, np.log(np.exp(x.data).sum(1)))


def test_softmax_family_is_stable_for_huge_logits():
    logits = tensor(np.array([[1e4, -1e4, 0.0], [5e3, 5e3, -1e4]]), requires_grad=True)
    for y in (logits.softmax(1), logits.log_softmax(1), logits.logsumexp(1)):
        assert np.isfinite(y.data).all()
        (y * tensor(np.ones(y.shape))).sum().backward()
        assert np.isfinite(logits.grad.data).all()
    np.testing.assert_allclose(logits.softmax(1).data, [[1, 0, 0], [0.5, 0.5, 0]])
    np.testing.assert_allclose(logits.log_softmax(1).data[0], [0, -2e4, -1e4])


def test_float_casts():
    x = tensor([1.5, 2.5], requires_grad=True)
    y = x.double()
    assert y.dtype == np.float64 and y.grad_fn is not None
    (y * 2).sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.data.tolist() == [2, 2]
    assert x.long().dtype == np.int64 and not x.long().requires_grad
    assert x.float() is x


def test_fancy_indexing_accumulates_repeated_indices():
    x = tensor(np.zeros(4), requires_grad=True)
    x[np.array([0, 0, 2, 0])].sum().backward()
    assert x.grad.data.tolist() == [3, 0, 1, 0]
    y = tensor(np.zeros((2, 3)), requires_grad=True)
    y[tensor([1, 1]), [0, 0]].sum().backward()  # Tensor and list indices work too
    assert y.grad.data.tolist() == [[0, 0, 0], [2, 0, 0]]


def test_iteration_and_len():
    x = tensor(np.arange(6.0).reshape(3, 2))
    rows = list(x)
    assert len(rows) == 3 and rows[2].data.tolist() == [4, 5]
