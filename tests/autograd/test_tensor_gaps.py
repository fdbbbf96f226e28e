"""The Tensor API pytorch/examples still lacked, without PyTorch: `x[index] = value` (plain
writes, recording, the leaf and view refusals, version checks, dtypes, devices), `tril`/`triu`,
`mm`, `narrow`, `t`, `mT`, `type`, `new_*`, `__format__`, the device flags, and their errors
by name."""

from __future__ import annotations

import numpy as np
import pytest

import kinone.autograd as ag
from kinone.autograd import Tensor, no_grad, trace
from kinone.autograd.backend import use_standin_cuda
from kinone.autograd.ops.inplace import SetItemInPlace
from kinone.autograd.ops.triangular import Tril, Triu


# ---------------------------------------------------------------------- setitem
def test_setitem_without_grad_writes_in_place_and_bumps_the_version():
    x = ag.zeros(2, 3)
    data = x.data
    x[:, 1] = 2.0
    x[0] = Tensor(np.array([1.0, 2.0, 3.0], dtype=np.float32))
    assert x.data is data and x._version == 2
    np.testing.assert_array_equal(x.numpy(), [[1, 2, 3], [0, 2, 0]])
    assert x.grad_fn is None and not x.requires_grad


def test_setitem_on_a_leaf_that_requires_grad_is_refused_in_grad_mode_and_allowed_under_no_grad():
    w = ag.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="setitem: a leaf tensor that requires grad"):
        w[0] = 1.0
    assert w._version == 0
    with no_grad():
        w[0] = 1.0
    assert w.is_leaf and w.requires_grad and w.numpy()[0] == 1.0 and w._version == 1


def test_setitem_records_on_a_non_leaf_and_on_a_value_that_requires_grad():
    a = Tensor(np.arange(4.0), requires_grad=True)
    v = Tensor(np.array(10.0), requires_grad=True)
    y = a * 1.0
    y[1:3] = v
    assert isinstance(y.grad_fn, SetItemInPlace) and y.requires_grad
    (y * Tensor(np.array([1.0, 2.0, 3.0, 4.0]))).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [1.0, 0.0, 0.0, 4.0])  # the overwritten entries get nothing
    assert v.grad.item() == 5.0  # 2 + 3: the value broadcast over two entries
    z = ag.zeros(3, dtype=np.float64)  # a plain tensor joins the graph through the value
    z[0] = v
    assert not z.is_leaf and z.requires_grad


def test_a_value_that_requires_grad_into_an_integer_tensor_is_written_without_a_graph():
    x = ag.zeros(3, dtype=np.int64)
    x[0] = Tensor(np.array(2.7), requires_grad=True)
    assert x.grad_fn is None and not x.requires_grad and x.tolist() == [2, 0, 0]


def test_setitem_on_a_view_of_a_tensor_that_requires_grad_is_refused_by_name():
    y = Tensor(np.ones((2, 3)), requires_grad=True) * 2.0
    with pytest.raises(RuntimeError, match=r"y\[index\] = y\[index\] \+ v"):
        y[0, 1:] += 1.0  # __getitem__, then add_ on the view
    view = y[0]
    with pytest.raises(RuntimeError, match="in-place change of a view"):
        view[1] = 5.0


def test_setitem_after_a_node_saved_the_tensor_fails_at_backward():
    a = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y = a * 1.0
    out = (y * y).sum()  # Mul saved y
    y[0] = 0.0
    with pytest.raises(
        RuntimeError,
        match=r"Mul: one of the variables needed for gradient computation has been modified by an in-place operation",
    ):
        out.backward()


def test_setitem_errors_name_the_op_and_shapes():
    x = ag.zeros(2, 3)
    with pytest.raises(RuntimeError, match=r"setitem: a value of shape \(2,\) does not broadcast to the shape \(3,\)"):
        x[0] = Tensor(np.ones(2, dtype=np.float32))
    with pytest.raises(IndexError, match=r"setitem: index .* shape \(2, 3\)"):
        x[5] = 1.0


def test_setitem_with_a_repeated_index_sends_each_repeat_its_gradient():
    v = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = ag.zeros(3, dtype=np.float64)
    y[Tensor(np.array([0, 0]))] = v
    assert y.numpy()[0] == 2.0  # the last write wins, as numpy
    y.sum().backward()
    np.testing.assert_array_equal(v.grad.numpy(), [1.0, 1.0])


def test_setitem_with_extra_leading_ones_on_the_value():
    v = Tensor(np.ones((1, 1, 3)), requires_grad=True)
    y = ag.zeros(2, 3, dtype=np.float64)
    y[0:1] = v
    y.sum().backward()
    assert v.grad.shape == (1, 1, 3)


def test_setitem_is_traced():
    with trace() as records:
        y = Tensor(np.zeros(3)) * 1.0
        y[1] = 2.0
    assert [r.function for r in records][-1] is SetItemInPlace


def test_setitem_on_the_standin_device_takes_a_host_index_and_values():
    with use_standin_cuda():
        x = ag.zeros(2, 3).cuda()
        x[Tensor(np.array([1]))] = 3.0
        x[0] = np.array([1.0, 2.0, 3.0], dtype=np.float32)
        x[:, 2] = [7.0, 8.0]
        x[1, 0] = Tensor(np.float32(4.0))  # a 0-d CPU tensor, as PyTorch takes it
        assert x.is_cuda
        np.testing.assert_array_equal(x.numpy(), [[1, 2, 7], [4, 3, 8]])
        with pytest.raises(RuntimeError, match="setitem: expected both tensors on one device; got cuda:0 and cpu"):
            x[0] = ag.ones(3)


# ---------------------------------------------------------------------- tril, triu
def test_tril_and_triu_split_a_matrix():
    x = Tensor(np.arange(1.0, 13.0).reshape(3, 4))
    for k in (-1, 0, 2):
        np.testing.assert_array_equal((ag.tril(x, k) + ag.triu(x, k + 1)).numpy(), x.numpy())
    assert isinstance(x.tril().requires_grad_().tril().grad_fn, Tril)
    assert isinstance(ag.triu(Tensor(np.ones((2, 2)), requires_grad=True)).grad_fn, Triu)


def test_tril_of_integer_and_boolean_tensors():
    assert ag.ones(3, 3, dtype=np.bool_).tril().numpy().sum() == 6
    assert ag.ones(2, 3, 3, dtype=np.int64).triu(1).tolist()[1] == [[0, 1, 1], [0, 0, 1], [0, 0, 0]]


def test_the_transformers_square_subsequent_mask():
    """word_language_model: torch.log(torch.tril(torch.ones(sz, sz))): 0 on and below the diagonal, -inf above."""
    with np.errstate(divide="ignore"):
        mask = ag.log(ag.tril(ag.ones(3, 3))).numpy()
    np.testing.assert_array_equal(mask, [[0, -np.inf, -np.inf], [0, 0, -np.inf], [0, 0, 0]])


def test_tril_errors():
    with pytest.raises(RuntimeError, match=r"tril: input tensor must have at least 2 dimensions, got shape \(3,\)"):
        ag.tril(ag.ones(3))
    with pytest.raises(TypeError, match="triu: diagonal must be an int"):
        ag.ones(2, 2).triu(0.5)


# ---------------------------------------------------------------------- shapes and products
def test_narrow_is_a_view_with_python_bounds():
    x = Tensor(np.arange(12.0).reshape(3, 4))
    assert x.narrow(1, 1, 2).tolist() == [[1, 2], [5, 6], [9, 10]]
    assert x.narrow(-2, -1, 1).tolist() == [[8, 9, 10, 11]]
    assert x.narrow(0, Tensor(np.array(1)), 0).shape == (0, 4)  # a 0-d tensor start; an empty piece
    assert np.shares_memory(x.narrow(1, 0, 2).data, x.data)


@pytest.mark.parametrize(
    "args, error, message",
    [
        ((0, 0, 4), RuntimeError, r"narrow: start \(0\) \+ length \(4\) exceeds dim 0's size \(3\)"),
        ((0, 4, 0), IndexError, r"narrow: start 4 is out of range for dim 0 of size 3"),
        ((0, 0, -1), RuntimeError, "narrow: length must be non-negative"),
        ((2, 0, 1), IndexError, "narrow: dim 2 is out of range"),
    ],
)
def test_narrow_errors(args, error, message):
    with pytest.raises(error, match=message):
        ag.ones(3, 4).narrow(*args)


def test_t_mT_and_mm():
    x = Tensor(np.arange(6.0).reshape(2, 3))
    assert x.t().shape == (3, 2) and ag.t(x).tolist() == x.T.tolist()
    assert ag.ones(4).t().shape == (4,) and Tensor(np.array(2.0)).t().item() == 2.0
    assert ag.ones(5, 2, 3).mT.shape == (5, 3, 2)
    np.testing.assert_array_equal(x.mm(x.t()).numpy(), x.numpy() @ x.numpy().T)
    with pytest.raises(RuntimeError, match=r"t: expects a tensor with <= 2 dimensions, but the input is 3-D"):
        ag.ones(2, 2, 2).t()
    with pytest.raises(RuntimeError, match="mT: only supported on matrices or batches of matrices; got a 1-D"):
        ag.ones(3).mT
    with pytest.raises(RuntimeError, match=r"mm: mat2 must be a matrix \(2-D\), got shape \(3,\)"):
        ag.mm(x, ag.ones(3))


# ---------------------------------------------------------------------- type, format, new_*, devices
class LongTensor:  # what a facade's torch.LongTensor is named
    pass


def test_type_names_and_casts():
    x = Tensor(np.array([1.5, -2.5], dtype=np.float32), requires_grad=True)
    assert x.type() == "torch.FloatTensor" and x.long().type() == "torch.LongTensor"
    assert x.type(ag.float32) is x and x.type("torch.FloatTensor") is x
    assert x.type(LongTensor).tolist() == [1, -2]
    y = x.type(ag.float64)
    assert y.dtype == np.float64 and y.grad_fn is not None  # differentiable between floating dtypes
    with pytest.raises(TypeError, match=r"type: unknown tensor type 'torch\.FancyTensor'"):
        x.type("torch.FancyTensor")
    with use_standin_cuda():
        z = x.detach().cuda()
        assert z.type() == "torch.cuda.FloatTensor"
        assert z.type("torch.LongTensor").is_cpu and z.type("torch.cuda.DoubleTensor").is_cuda
        assert z.type(ag.int64).is_cuda


def test_format():
    assert "{:+.2f}".format(Tensor(np.float32(1.234))) == "+1.23"  # noqa: UP032 - the example's spelling
    assert f"{Tensor(np.array(3)):03d}" == "003"
    assert f"{ag.ones(2)}" == str(ag.ones(2))

    class Parameter(Tensor):  # a subclass formats as PyTorch's Parameter does: no spec
        pass

    with pytest.raises(TypeError, match="unsupported format string"):
        format(Parameter(np.float32(1.0)), ".2f")


def test_new_methods_keep_dtype_and_device():
    x = ag.ones(2, dtype=np.float64)
    assert x.new_zeros(2, 3).dtype == np.float64 and x.new_zeros((2, 3)).shape == (2, 3)
    assert x.new_full((2,), 7).tolist() == [7.0, 7.0]
    assert x.new_tensor([1, 2]).dtype == np.float64
    data = np.ones(2)
    assert not np.shares_memory(x.new_tensor(data).data, data)
    with use_standin_cuda():
        g = x.cuda()
        for made in (g.new_zeros(2), g.new_ones(2), g.new_empty(2), g.new_full((2,), 1.0), g.new_tensor([1.0])):
            assert made.is_cuda and made.dtype == np.float64
        assert g.new_zeros(2, device="cpu").is_cpu


def test_device_flags():
    x = ag.ones(1)
    assert (x.is_cpu, x.is_cuda, x.is_xpu, x.is_mps) == (True, False, False, False)
    with use_standin_cuda():
        g = x.cuda()
        assert (g.is_cpu, g.is_cuda, g.is_xpu, g.is_mps) == (False, True, False, False)


# ---------------------------------------------------------------------- legacy constructors
def test_legacy_constructors():
    assert ag.LongTensor(3).tolist() == [0, 0, 0] and ag.LongTensor(2, 3).shape == (2, 3)
    assert ag.LongTensor().shape == (0,) and ag.LongTensor(ag.Size([2, 2])).shape == (2, 2)
    assert ag.LongTensor([1.7, -2.5]).tolist() == [1, -2] and ag.FloatTensor((2, 3)).tolist() == [2.0, 3.0]
    t = ag.zeros(2)
    assert ag.FloatTensor(t).data is t.data
    assert isinstance(t, ag.FloatTensor) and not isinstance(t, ag.DoubleTensor) and not isinstance(3, ag.FloatTensor)
    assert t.type(ag.LongTensor).type() == "torch.LongTensor" and ag.ByteTensor(1).dtype == np.uint8
    # word_language_model's export_onnx: torch.LongTensor(seq_len * batch_size).zero_().view(-1, batch_size)
    assert ag.LongTensor(6).zero_().view(-1, 2).shape == (3, 2)
    with pytest.raises(TypeError, match="LongTensor: expected a tensor of dtype int64, got float32"):
        ag.LongTensor(t)
    with pytest.raises(RuntimeError, match="FloatTensor: legacy constructor expects device type: cpu"):
        ag.FloatTensor(2, device="cuda")
    with pytest.raises(TypeError, match="IntTensor: expected sizes"):
        ag.IntTensor([1], [2])
