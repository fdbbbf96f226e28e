"""The device API, PyTorch's way: `Tensor.device`, `.to()`, `.cuda()`, `.cpu()`, `device=` on
the factories, `kinone.autograd.cuda`, mixed-device errors, gradients across devices.

"cuda" is the stand-in device here (`backend.use_standin_cuda()`): host memory behind arrays
that refuse to mix with NumPy's, as CuPy's do. The same tests hold on a GPU with CuPy.
"""

from __future__ import annotations

import numpy as np
import pytest

import kinone.autograd as ag
from kinone.autograd import Device, Function, Tensor, backend, cuda, no_grad
from kinone.autograd.ops.indexing import scatter_add_deterministic

CUDA = Device("cuda:0")
CPU = Device("cpu")


@pytest.fixture
def standin():
    with backend.use_standin_cuda():
        yield


def host(t: Tensor) -> np.ndarray:
    return t.numpy()


# ---------------------------------------------------------------------- devices and availability
def test_device_objects_compare_as_pytorch_devices():
    assert ag.device("cuda") == Device("cuda:0") == "cuda:0"
    assert ag.device("cpu") == "cpu" and ag.device("cpu") != "cuda"
    assert str(ag.device("cuda:1")) == "cuda:1" and repr(ag.device("cpu")) == "device('cpu')"
    with pytest.raises(ValueError, match="device: expected 'cpu', 'cuda' or 'cuda:N'; got 'gpu'"):
        ag.device("gpu")


def test_cuda_is_not_available_without_cupy_and_is_with_the_standin():
    pytest.importorskip("numpy")
    try:
        import cupy  # noqa: F401
    except ImportError:
        assert cuda.is_available() is False and cuda.device_count() == 0
    with backend.use_standin_cuda():
        assert cuda.is_available() is True and cuda.device_count() == 1
        assert ag.cuda is cuda


def test_asking_for_cuda_without_cupy_names_the_extras():
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match=r"kinone-autograd\[cuda12\] or kinone-autograd\[cuda13\]"):
        ag.zeros(2, device="cuda")
    with pytest.raises(RuntimeError, match="CuPy is not installed"):
        ag.tensor([1.0]).cuda()


# ---------------------------------------------------------------------- moving tensors
def test_a_new_tensor_is_on_the_cpu():
    t = ag.tensor([1.0, 2.0])
    assert t.device == CPU and not t.is_cuda and type(t.data) is np.ndarray


def test_to_cuda_and_back(standin):
    t = ag.tensor([[1.0, 2.0], [3.0, 4.0]])
    g = t.to("cuda")
    assert g.device == CUDA and g.is_cuda and not isinstance(g.data, np.ndarray)
    assert g.dtype == np.float32 and g.shape == (2, 2)
    back = g.cpu()
    assert back.device == CPU and type(back.data) is np.ndarray
    np.testing.assert_array_equal(back.numpy(), t.numpy())


def test_cuda_and_cpu_return_the_tensor_itself_when_it_is_there(standin):
    t = ag.tensor([1.0])
    assert t.cpu() is t and t.to("cpu") is t and t.to(CPU) is t
    g = t.cuda()
    assert g.cuda() is g and g.to("cuda:0") is g and g.cuda(0) is g


def test_to_device_and_dtype_and_to_other_tensor(standin):
    t = ag.tensor([1.0, 2.0])
    g = t.to("cuda", np.float64)
    assert g.device == CUDA and g.dtype == np.float64
    h = t.to(device="cuda", dtype=np.float64)
    assert h.device == CUDA and h.dtype == np.float64
    like = ag.zeros(1, dtype=np.float64, device="cuda")
    o = t.to(like)
    assert o.device == CUDA and o.dtype == np.float64
    assert g.to(ag.tensor([1], dtype=np.int64)).device == CPU
    assert g.to(ag.tensor([1], dtype=np.int64)).dtype == np.int64


def test_the_copy_on_a_device_does_not_share_memory_with_the_host(standin):
    array = np.array([1.0, 2.0])
    t = ag.tensor(array, device="cuda")
    array[0] = 99.0
    assert host(t)[0] == 1.0
    n = t.numpy()
    n[1] = 99.0
    assert host(t)[1] == 2.0  # .numpy() of a CUDA tensor is a host copy


# ---------------------------------------------------------------------- factories
FACTORIES = {
    "tensor": lambda **kw: ag.tensor([[1.0, 2.0, 3.0]], **kw),
    "zeros": lambda **kw: ag.zeros(1, 3, **kw),
    "ones": lambda **kw: ag.ones((1, 3), **kw),
    "full": lambda **kw: ag.full((1, 3), 2.5, **kw),
    "randn": lambda **kw: ag.randn(1, 3, **kw),
    "rand": lambda **kw: ag.rand(1, 3, **kw),
    "arange": lambda **kw: ag.arange(0.0, 3.0, **kw),
    "zeros_like": lambda **kw: ag.zeros_like(ag.ones(1, 3), **kw),
    "ones_like": lambda **kw: ag.ones_like(ag.ones(1, 3), **kw),
    "full_like": lambda **kw: ag.full_like(ag.ones(1, 3), 7.0, **kw),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_factories_take_device(standin, name):
    on_cpu = FACTORIES[name]()
    on_cuda = FACTORIES[name](device="cuda")
    assert on_cpu.device == CPU and on_cuda.device == CUDA
    assert on_cuda.shape == on_cpu.shape and on_cuda.dtype == on_cpu.dtype
    if name not in ("randn", "rand"):
        np.testing.assert_array_equal(host(on_cuda), host(on_cpu))
    assert FACTORIES[name](device=CUDA).device == CUDA
    assert FACTORIES[name](device="cpu").device == CPU


@pytest.mark.parametrize("name", ["zeros_like", "ones_like", "full_like"])
def test_like_factories_follow_the_tensors_device(standin, name):
    make = getattr(ag, name)
    args = (7.0,) if name == "full_like" else ()
    g = ag.ones(2, dtype=np.float64, device="cuda")
    out = make(g, *args)
    assert out.device == CUDA and out.dtype == np.float64
    assert make(g, *args, device="cpu").device == CPU
    assert make(g.data, *args).device == CUDA  # a CUDA array, not a Tensor
    assert make(np.ones(2), *args).device == CPU


def test_full_like_fills_and_takes_dtype_and_requires_grad():
    t = ag.full_like(ag.zeros(2, 2), 3, dtype=np.float64, requires_grad=True)
    np.testing.assert_array_equal(t.numpy(), np.full((2, 2), 3.0))
    assert t.dtype == np.float64 and t.requires_grad


def test_random_factories_on_a_device_use_its_generator(standin):
    ag.manual_seed(5)
    a = ag.randn(4, device="cuda")
    ag.manual_seed(5)
    b = ag.randn(4, device="cuda")
    np.testing.assert_array_equal(host(a), host(b))
    assert ag.rand(3, dtype=np.float64, device="cuda").dtype == np.float64


# ---------------------------------------------------------------------- mixing devices
def test_an_op_on_two_devices_names_the_op_and_both_devices(standin):
    a, b = ag.tensor([1.0, 2.0]), ag.tensor([1.0, 2.0], device="cuda")
    with pytest.raises(
        RuntimeError, match=r"^Add: expected all inputs on one device; got input 0 on cpu, input 1 on cuda:0"
    ):
        a + b
    with pytest.raises(RuntimeError, match=r"^MatMul: .*input 0 on cuda:0, input 1 on cpu"):
        b @ a
    with pytest.raises(RuntimeError, match=r"^Cat: .*on cpu.*on cuda:0"):
        ag.cat([a, b])


def test_a_comparison_on_two_devices_names_both_devices(standin):
    a, b = ag.tensor([1.0, 2.0]), ag.tensor([1.0, 2.0], device="cuda")
    with pytest.raises(RuntimeError, match=r"^less: expected both tensors on one device; got cpu and cuda:0"):
        a < b


def test_scalars_and_host_values_follow_the_tensor(standin):
    g = ag.tensor([1.0, 2.0], device="cuda")
    for out in (g * 2.0, 2.0 - g, g**2, g / 4, ag.where(g > 1.5, g, 0.0), ag.maximum(g, 0.0)):
        assert out.device == CUDA
    assert (g > 1.5).device == CUDA and host(g > 1.5).tolist() == [False, True]


# ---------------------------------------------------------------------- host copies
def test_numpy_item_and_repr_of_a_cuda_tensor_copy_to_the_host(standin):
    g = ag.tensor([[1.5, 2.0]], device="cuda", requires_grad=True)
    n = g.numpy()
    assert type(n) is np.ndarray and n.tolist() == [[1.5, 2.0]]
    assert g[0, 0].item() == 1.5 and float(g.sum()) == 3.5
    assert repr(g) == "tensor([[1.5, 2. ]], device='cuda:0', requires_grad=True)"
    assert repr(ag.tensor([1], device="cuda")) == "tensor([1], device='cuda:0')"


# ---------------------------------------------------------------------- gradients
def test_gradients_flow_back_through_to_and_stay_on_the_leafs_device(standin):
    x = ag.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = x.cuda()
    assert y.requires_grad and y.grad_fn is not None
    loss = (y * y).sum().cpu() * 3.0
    loss.backward()
    assert x.grad.device == CPU
    np.testing.assert_allclose(x.grad.numpy(), 6 * np.array([1.0, -2.0, 3.0]))


def test_backward_on_a_cuda_scalar_gives_cuda_grads(standin):
    w = ag.tensor([[1.0, 2.0], [3.0, 4.0]], device="cuda", requires_grad=True)
    x = ag.tensor([1.0, -1.0], device="cuda")
    loss = (w @ x).tanh().sum()
    assert loss.device == CUDA and loss.shape == ()
    loss.backward()
    assert w.grad.device == CUDA and w.grad.dtype == np.float32
    expected = np.outer(1 - np.tanh(np.array([-1.0, -1.0])) ** 2, [1.0, -1.0])
    np.testing.assert_allclose(host(w.grad), expected, rtol=1e-6)
    loss = (w @ x).tanh().sum()
    loss.backward()  # accumulation on the device
    np.testing.assert_allclose(host(w.grad), 2 * expected, rtol=1e-6)


def test_backward_with_a_gradient_on_the_device_or_from_the_host(standin):
    w = ag.tensor([1.0, 2.0], device="cuda", requires_grad=True)
    (w * 3).backward(ag.tensor([1.0, 2.0], device="cuda"))
    np.testing.assert_array_equal(host(w.grad), [3.0, 6.0])
    w.grad = None
    (w * 3).backward(np.array([1.0, 1.0]))  # host values follow the tensor, as before
    np.testing.assert_array_equal(host(w.grad), [3.0, 3.0])
    w.grad = None
    (w * 3).backward(ag.ones(2, device="cuda").data)  # a raw device array
    np.testing.assert_array_equal(host(w.grad), [3.0, 3.0])
    with pytest.raises(RuntimeError, match="backward: grad is on cpu but the tensor is on cuda:0"):
        (w * 3).backward(ag.ones(2))


def test_no_grad_and_detach_are_unchanged_on_a_device(standin):
    x = ag.tensor([1.0], requires_grad=True)
    with no_grad():
        y = x.cuda() * 2
    assert not y.requires_grad and y.grad_fn is None and y.device == CUDA
    d = (x.cuda() * 2).detach()
    assert d.is_leaf and not d.requires_grad and d.device == CUDA


# ---------------------------------------------------------------------- indexing on a device
@pytest.mark.parametrize(
    "index",
    [
        np.array([0, 2, 0]),
        [2, 0, 0],
        (np.array([0, 1, 1]), np.array([1, 1, 2])),
        np.array([True, False, True]),
        (slice(None), [0, 0, 2]),
    ],
    ids=["numpy-int", "list", "two-arrays", "numpy-bool", "slice-and-list"],
)
def test_host_indices_index_a_cuda_tensor(standin, index):
    data = np.arange(12.0).reshape(3, 4) - 5
    cpu = ag.tensor(data, requires_grad=True)
    gpu = ag.tensor(data, device="cuda", requires_grad=True)
    out_cpu, out_gpu = cpu[index], gpu[index]
    assert out_gpu.device == CUDA
    np.testing.assert_array_equal(host(out_gpu), host(out_cpu))
    weight = np.random.default_rng(0).standard_normal(out_cpu.shape)
    (out_cpu * ag.tensor(weight)).sum().backward()
    (out_gpu * ag.tensor(weight, device="cuda")).sum().backward()
    assert gpu.grad.device == CUDA
    np.testing.assert_array_equal(host(gpu.grad), host(cpu.grad))


def test_index_tensors_on_the_cpu_or_the_device_index_a_cuda_tensor(standin):
    gpu = ag.tensor([10.0, 20.0, 30.0], device="cuda")
    assert host(gpu[ag.tensor([2, 0])]).tolist() == [30.0, 10.0]
    assert host(gpu[ag.tensor([2, 0], device="cuda")]).tolist() == [30.0, 10.0]
    assert host(gpu[gpu > 15.0]).tolist() == [20.0, 30.0]


def test_a_device_index_for_a_cpu_tensor_is_refused_by_name(standin):
    cpu = ag.tensor([10.0, 20.0, 30.0])
    with pytest.raises(RuntimeError, match=r"^getitem: an index array on cuda:0 cannot index a tensor on cpu"):
        cpu[ag.tensor([2, 0], device="cuda")]


def test_the_device_scatter_add_equals_numpy_add_at_bit_for_bit():
    rng = np.random.default_rng(3)
    for shape, index in [
        ((50,), (rng.integers(0, 50, 400),)),
        ((6, 7), (rng.integers(0, 6, (30, 4)), rng.integers(0, 7, (30, 4)))),
        ((5, 4), (slice(None), rng.integers(0, 4, 9))),
        ((3, 3), (np.array([], dtype=np.int64),)),
    ]:
        index = index if len(index) > 1 else index[0]
        picked = np.zeros(shape)[index].shape
        grad = (rng.standard_normal(picked) * 10).astype(np.float32)
        expected = np.zeros(shape, np.float32)
        np.add.at(expected, index, grad)
        got = scatter_add_deterministic(np.zeros(shape, np.float32), index, grad)
        assert got.tobytes() == expected.tobytes()


def test_repeated_indices_on_the_device_sum_as_on_the_cpu(standin):
    index = np.array([1, 1, 1, 0, 1])
    values = np.array([1e8, 1.0, -1e8, 2.0, 3.0], dtype=np.float32)
    cpu = ag.zeros(2, requires_grad=True)
    gpu = ag.zeros(2, device="cuda", requires_grad=True)
    cpu[index].backward(ag.tensor(values))
    gpu[index].backward(ag.tensor(values, device="cuda"))
    assert host(gpu.grad).tobytes() == host(cpu.grad).tobytes()  # the same order of additions


# ---------------------------------------------------------------------- versions on a device
def test_an_in_place_change_of_a_saved_cuda_leaf_is_caught(standin):
    w = ag.tensor([[1.0, 2.0], [3.0, 4.0]], device="cuda", requires_grad=True)
    x = ag.tensor([[1.0, 0.0]], device="cuda", requires_grad=True)
    y = (x @ w.T).sum()
    w.data[0, 0] = 5.0
    ag.increment_version(w)
    with pytest.raises(RuntimeError, match="MatMul saved input 1 of shape"):
        y.backward()


def test_a_custom_function_saving_a_view_of_a_cuda_leaf_is_checked(standin):
    class FirstRowTimesTwo(Function):
        """y = x[0] * 2;  dL/dx[0] = 2 g (a test op that saves a view of its input)."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x[0])
            return x[0] * 2

        @staticmethod
        def backward(ctx, grad):
            (row,) = ctx.saved
            full = ag.backend.get_array_module(grad).zeros((2,) + row.shape, dtype=grad.dtype)
            full[0] = 2 * grad
            return full

    w = ag.tensor([[1.0, 2.0], [3.0, 4.0]], device="cuda", requires_grad=True)
    y = FirstRowTimesTwo.apply(w).sum()
    ag.increment_version(w)
    with pytest.raises(RuntimeError, match="FirstRowTimesTwo saved input 0"):
        y.backward()


def test_views_of_a_cuda_tensor_share_its_version(standin):
    w = ag.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], device="cuda", requires_grad=True)
    view = w.reshape(6)[1:4]
    ag.increment_version(w)
    assert view._version == w._version == 1


# ---------------------------------------------------------------------- the stand-in's strictness
def test_the_standin_refuses_what_cupy_refuses(standin):
    xp = backend.cuda_module()
    x = xp.ones(3)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(x)
    with pytest.raises(TypeError, match="unsupported type numpy.ndarray"):
        x + np.ones(3)
    with pytest.raises(NotImplementedError, match="maximum.accumulate"):
        xp.maximum.accumulate(x)
    with pytest.raises(NotImplementedError, match="maximum.reduce"):
        xp.maximum.reduce(x)
    with pytest.raises(NotImplementedError, match="maximum.accumulate"):
        np.maximum.accumulate(x)  # through __array_ufunc__, as CuPy's
    assert float(xp.add.reduce(x)) == 3.0
    assert host(ag.Tensor(xp.multiply.accumulate(x))).tolist() == [1.0, 1.0, 1.0]


def test_the_standin_generator_has_cupys_methods_only(standin):
    rng = ag.default_generator("cuda")
    assert ag.Tensor(rng.standard_normal((2, 3), dtype=np.float32)).device == CUDA
    assert rng.uniform(-1.0, 1.0, (4,), dtype=np.float32).dtype == np.float32
    with pytest.raises(AttributeError, match="has no attribute 'normal'"):
        rng.normal(0.0, 1.0, (2,))
    with pytest.raises(AttributeError, match="has no attribute 'permutation'"):
        rng.permutation(3)


def test_the_standin_refuses_numpy_functions_that_cupy_lacks(standin):
    xp = backend.cuda_module()
    x = xp.ones(3)
    with pytest.raises(TypeError, match=r"returned NotImplemented from __array_ufunc__\(<ufunc 'spacing'>"):
        np.spacing(x)
    with pytest.raises(TypeError, match="no implementation found for 'numpy.insert'"):
        np.insert(x, 0, 1.0)
    with pytest.raises(AttributeError, match="module 'cupy' has no attribute 'geomspace'"):
        xp.geomspace(1, 10, 3)
    assert host(ag.Tensor(np.concatenate([x, x]))).shape == (6,)  # what CuPy has still dispatches


def test_the_standin_flags_are_cupys(standin):
    x = backend.cuda_module().ones((2, 3))
    assert x.flags.c_contiguous and x.flags.owndata and x.flags["C_CONTIGUOUS"]
    assert not x[:, 1:].flags.owndata and not x.T.flags.c_contiguous
    with pytest.raises(AttributeError):
        x.flags.writeable  # CuPy's flags have no writeable
    with pytest.raises(KeyError, match="WRITEABLE is not defined for cupy.ndarray.flags"):
        x.flags["WRITEABLE"]


def test_tf32_is_off_by_default_and_switches_without_a_gpu():
    from kinone.autograd import cuda

    assert cuda.allow_tf32() is False
    with backend.use_standin_cuda():
        cuda.set_allow_tf32(True)
        assert cuda.allow_tf32() is True
        cuda.set_allow_tf32(False)
    assert cuda.allow_tf32() is False
