"""Behaviour of the Tensor API of issue 16 that parity tests do not reach without torch: size()
and Size, the (values, indices) tuples, errors that name the op, random creation under
manual_seed, memory sharing, and the index ops on a tensor that requires grad."""

from __future__ import annotations

import numpy as np
import pytest

import kinone.autograd as ag
from kinone.autograd import Size, Tensor, backend


def test_size_is_a_method_returning_a_size_or_one_dim():
    x = ag.zeros(2, 3, 4)
    assert x.size() == (2, 3, 4) and isinstance(x.size(), Size) and isinstance(x.size(), tuple)
    assert x.size(0) == 2 and x.size(-1) == 4 and x.size().numel() == 24 == x.numel() == x.nelement()
    assert repr(x.size()) == "Size([2, 3, 4])" and x.dim() == x.ndim == 3
    with pytest.raises(IndexError, match=r"size: dim 3 is out of range for a tensor of 3 dims"):
        x.size(3)
    with pytest.raises(IndexError, match="size: dim 0"):
        ag.tensor(1.0).size(0)


def test_max_with_a_dim_is_a_named_tuple_and_without_one_a_tensor():
    x = ag.tensor([[1.0, 5.0, 5.0], [7.0, 0.0, 7.0]], requires_grad=True)
    values, indices = x.max(1)
    assert isinstance(x.max(), Tensor) and x.max().item() == 7.0
    np.testing.assert_array_equal(indices.numpy(), [1, 0])  # the first of ties
    assert x.max(1).values is not None and x.max(dim=1, keepdim=True).indices.shape == (2, 1)
    values.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 1, 0], [1, 0, 0]])  # only to the index returned
    with pytest.raises(TypeError, match="max: keepdim needs a dim"):
        x.max(keepdim=True)
    np.testing.assert_array_equal(x.max(ag.tensor([2.0, 6.0, 1.0])).numpy(), [[2, 6, 5], [7, 6, 7]])


def test_sort_is_stable_in_both_directions():
    x = ag.tensor([2.0, 1.0, 2.0, 1.0, 2.0])
    np.testing.assert_array_equal(x.sort().indices.numpy(), [1, 3, 0, 2, 4])
    np.testing.assert_array_equal(x.sort(descending=True).indices.numpy(), [0, 2, 4, 1, 3])
    np.testing.assert_array_equal(x.topk(2).indices.numpy(), [0, 2])


def test_index_ops_on_a_tensor_that_requires_grad_return_integers_outside_the_graph():
    x = ag.randn(3, 4, requires_grad=True)
    for indices in (x.argmax(1), x.argmin(), x.argsort(0), x.topk(2).indices, x.sort(1).indices):
        assert indices.dtype == np.int64 and not indices.requires_grad and indices.grad_fn is None


def test_errors_name_the_op_and_what_was_expected():
    x = ag.randn(2, 3)
    with pytest.raises(ValueError, match=r"topk: k \(4\) is out of range for dim -1 of size 3"):
        x.topk(4)
    with pytest.raises(TypeError, match="gather: index must be an int64 tensor"):
        x.gather(1, ag.tensor([[0]], dtype=np.int32))
    with pytest.raises(ValueError, match="gather: index has 1 dims but the tensor has 2"):
        x.gather(1, ag.tensor([0]))
    with pytest.raises(IndexError, match="gather: an index is out of range for a dim of size 3"):
        x.gather(1, ag.tensor([[5]]))
    with pytest.raises(TypeError, match="masked_fill: mask must be a bool tensor"):
        x.masked_fill(ag.ones(2, 3), 0.0)
    with pytest.raises(ValueError, match=r"split: sizes \[1, 1\] add up to 2, not to dim 1 of size 3"):
        x.split([1, 1], dim=1)
    with pytest.raises(ValueError, match="prod: dim must be one int or None"):
        x.prod((0, 1))
    with pytest.raises(ValueError, match="norm: p='nuc' is not supported"):
        x.norm(p="nuc")
    with pytest.raises(ValueError, match="repeat: 1 repeats given for a tensor of 2 dims"):
        x.repeat(2)


def test_chunk_and_split_follow_torch_sizes():
    x = ag.arange(10)
    assert [c.numel() for c in x.chunk(4)] == [3, 3, 3, 1]
    assert [c.numel() for c in x.chunk(6)] == [2, 2, 2, 2, 2]
    assert [c.numel() for c in ag.split(x, 4)] == [4, 4, 2]


def test_scalar_conversions_and_copies():
    x = ag.tensor([[1.5, 2.0]])
    assert x.tolist() == [[1.5, 2.0]] and x[0, 1].item() == 2.0 and abs(ag.tensor(-2.0)).item() == 2.0
    assert x.contiguous() is x and not np.shares_memory(x.clone().data, x.data)
    t = ag.randn(2, 3).T
    assert not t.data.flags.c_contiguous and t.contiguous().data.flags.c_contiguous
    assert x.int().dtype == np.int32 and x.bool().dtype == np.bool_ and x.half().dtype == np.float16
    assert x.eq(ag.tensor([[1.5, 0.0]])).tolist() == [[True, False]] and x.equal(x.clone()) and not x.equal(x.T)


def test_from_numpy_shares_memory_and_random_creation_follows_manual_seed():
    array = np.arange(3.0)
    t = ag.from_numpy(array)
    array[0] = 9.0
    assert t[0].item() == 9.0 and t.dtype == np.float64
    with pytest.raises(TypeError, match="from_numpy: expected a numpy.ndarray"):
        ag.from_numpy([1, 2])
    draws = []
    for _ in range(2):
        ag.manual_seed(3)
        draws.append((ag.randint(0, 10, (5,)).tolist(), ag.randint(4, size=(2,)).tolist(), ag.randperm(6).tolist()))
    assert draws[0] == draws[1]
    low_high, high_only, perm = draws[0]
    assert all(0 <= v < 10 for v in low_high) and all(0 <= v < 4 for v in high_only) and sorted(perm) == list(range(6))
    assert ag.randint(0, 10, (2, 3)).dtype == np.int64 and ag.randperm(4).dtype == np.int64
    like = ag.rand_like(ag.zeros(2, 3, dtype=np.float64))
    assert like.shape == (2, 3) and like.dtype == np.float64 and ag.empty(2, 2).tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_creation_and_index_ops_on_the_standin_device():
    with backend.use_standin_cuda():
        assert ag.linspace(0, 1, 5, device="cuda").device == "cuda:0"
        assert ag.eye(3, device="cuda").device == "cuda:0"
        assert ag.randperm(5, device="cuda").device == "cuda:0"
        assert ag.randint(0, 5, (3,), device="cuda").device == "cuda:0"
        x = ag.tensor([[3.0, 1.0, 3.0], [0.0, 2.0, 2.0]]).cuda()
        sorted_x = x.sort(1, descending=True)
        assert sorted_x.indices.device == "cuda:0"
        np.testing.assert_array_equal(sorted_x.indices.numpy(), [[0, 2, 1], [1, 2, 0]])
        np.testing.assert_array_equal(x.argmax(1).numpy(), [0, 1])
        assert ag.allclose(x.norm(dim=1), x.square().sum(1).sqrt())
