"""Parity with PyTorch for the in-place methods: values, gradients through chains of in-place
ops on non-leaf tensors, the dtypes kept, and the version errors where torch raises.

Each case is written once as `fn(xs)` with methods both libraries spell the same way
(`add_`, `mul_`, `clamp_`, `+=`...); inputs are float64 leaves that require grad, the output is
pulled back with the same random cotangent, and outputs and every input's gradient are compared.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kinone.autograd import Tensor, no_grad  # noqa: E402

rng = np.random.default_rng(7)


def r(*shape):
    return rng.standard_normal(shape)


def pos(*shape):
    return rng.uniform(0.5, 2.0, shape)


def _clone(x):
    return x * 1.0  # a non-leaf copy, spelled the same in both libraries


def _iops(a, b):
    y = _clone(a)
    y += b
    y *= b
    y -= 0.5 * a
    y /= b * b + 1.0
    return y


CASES = {
    "add_": (lambda a, b: _clone(a).add_(b), [r(3, 4), r(3, 4)]),
    "add_ alpha broadcast": (lambda a, b: _clone(a).add_(b, alpha=-2.5), [r(2, 3), r(3)]),
    "add_ scalar": (lambda a: _clone(a).add_(3.0) * a, [r(4)]),
    "sub_ alpha": (lambda a, b: _clone(a).sub_(b, alpha=0.5), [r(3), r(1)]),
    "mul_": (lambda a, b: _clone(a).mul_(b), [r(3, 4), r(4)]),
    "mul_ by its own input": (lambda a: (a + 1.0).mul_(a), [r(5)]),
    "div_": (lambda a, b: _clone(a).div_(b), [r(3, 4), pos(3, 1)]),
    "clamp_ both": (lambda a: _clone(a).clamp_(-0.5, 0.5), [np.array([-1.2, -0.5, 0.1, 0.5, 0.9, 2.0])]),
    "clamp_ min": (lambda a: _clone(a).clamp_(min=0.2), [np.array([-1.0, 0.2, 1.5])]),
    "clamp_ max": (lambda a: _clone(a).clamp_(max=0.2), [np.array([-1.0, 0.2, 1.5])]),
    "fill_ number": (lambda a: _clone(a).fill_(2.0) + a, [r(3)]),
    "fill_ 0-d tensor": (lambda a, v: _clone(a).fill_(v) * a, [r(2, 3), r()]),
    "zero_": (lambda a: _clone(a).zero_() + a * a, [r(4)]),
    "copy_": (lambda a, b: _clone(a).copy_(b) * a, [r(2, 3), r(2, 3)]),
    "copy_ broadcast": (lambda a, b: _clone(a).copy_(b), [r(2, 3), r(3)]),
    "operators": (_iops, [r(3, 4), pos(3, 4)]),
    "chain": (lambda a, b: _clone(a).mul_(b).add_(a, alpha=2.0).clamp_(-1.0, 1.0).div_(b.exp()), [r(4, 3), r(3)]),
    "in-place then out-of-place": (lambda a, b: ((_clone(a) + 1.0).mul_(b) * a).sum(dim=1), [r(3, 4), r(4)]),
    "into a tensor without grad": (lambda a: (lambda z: z.add_(a).add_(a * a))(a.detach() * 0.0), [r(3)]),
}


def _run(lib, fn, arrays, cotangent_seed):
    if lib == "torch":
        xs = [torch.tensor(x, requires_grad=True) for x in arrays]
    else:
        xs = [Tensor(x.copy(), requires_grad=True) for x in arrays]
    out = fn(*xs)
    g = np.random.default_rng(cotangent_seed).standard_normal(tuple(out.shape))
    out.backward(torch.tensor(g) if lib == "torch" else Tensor(g))
    value = out.detach().numpy() if lib == "torch" else out.numpy()
    grads = [None if x.grad is None else x.grad.numpy() for x in xs]
    return value, str(out.dtype).replace("torch.", ""), grads


@pytest.mark.parametrize("name", list(CASES))
def test_values_and_gradients_match_torch(name):
    fn, arrays = CASES[name]
    k_value, k_dtype, k_grads = _run("kinone", fn, arrays, 1)
    t_value, t_dtype, t_grads = _run("torch", fn, arrays, 1)
    assert k_dtype == t_dtype
    np.testing.assert_allclose(k_value, t_value, rtol=1e-6, atol=1e-8)
    for i, (k, t) in enumerate(zip(k_grads, t_grads)):
        assert (k is None) == (t is None), f"input {i}: gradient presence differs"
        if k is not None:
            np.testing.assert_allclose(k, t, rtol=1e-6, atol=1e-8, err_msg=f"input {i}")


def _same_dtype_result(fn, dtype_k, dtype_t, value):
    k = Tensor(np.array(value, dtype=dtype_k))
    t = torch.tensor(value, dtype=dtype_t)
    fn(k)
    fn(t)
    assert k.dtype == dtype_k
    np.testing.assert_array_equal(k.numpy(), t.numpy())


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x.add_(2),
        lambda x: x.fill_(1.7),
        lambda x: x.clamp_(0, 2),
        lambda x: x.mul_(3),
        lambda x: x.sub_(1, alpha=2),
    ],
)
def test_integer_results_match_torch(fn):
    _same_dtype_result(fn, np.int64, torch.int64, [1, 2, 3])


def test_float32_keeps_float32_with_a_float64_operand():
    k, t = Tensor(np.ones(2, dtype=np.float32)), torch.ones(2, dtype=torch.float32)
    k += Tensor(np.full(2, 0.1))
    t += torch.full((2,), 0.1, dtype=torch.float64)
    assert k.dtype == np.float32 and t.dtype == torch.float32
    np.testing.assert_array_equal(k.numpy(), t.numpy())


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x.add_(1.5),
        lambda x: x.div_(2),
        lambda x: x.mul_(1.5),
        lambda x: x.clamp_(0.5, 2.5),
        lambda x: x.add_(1, alpha=0.5),
    ],
)
def test_integer_tensors_refuse_float_results_where_torch_does(fn):
    with pytest.raises(RuntimeError):
        fn(torch.tensor([1, 2]))
    with pytest.raises(RuntimeError):
        fn(Tensor(np.array([1, 2])))


def _both(build):
    """Run build(lib, make_leaf) in both libraries; return the two exceptions (or None)."""
    errors = []
    for lib in ("kinone", "torch"):

        def leaf(x, lib=lib):
            return torch.tensor(x, requires_grad=True) if lib == "torch" else Tensor(x.copy(), requires_grad=True)

        no_grad_block = torch.no_grad if lib == "torch" else no_grad
        try:
            build(leaf, no_grad_block)
        except RuntimeError as error:
            errors.append(error)
        else:
            errors.append(None)
    return errors


def _changed_saved_intermediate(leaf, no_grad_block):
    x, w = leaf(r(3)), leaf(r(3))
    y = x * 2.0
    z = y * w
    y.mul_(2.0)
    z.sum().backward()


def _changed_saved_output(leaf, no_grad_block):
    x = leaf(r(3))
    y = x.exp()
    y.add_(1.0)
    y.sum().backward()


def _changed_parameter(leaf, no_grad_block):
    w, x = leaf(r(3)), leaf(r(3))
    loss = (w * x).sum()
    with no_grad_block():
        w.sub_(0.1 * x)
    loss.backward()


def _leaf_in_grad_mode(leaf, no_grad_block):
    leaf(r(3)).add_(1.0)


def _view_of_a_leaf(leaf, no_grad_block):
    leaf(r(2, 3))[0].mul_(2.0)


def _unsaved_intermediate(leaf, no_grad_block):
    x = leaf(r(3))
    y = x + 1.0
    z = y + x
    y.mul_(3.0)
    (z + y).sum().backward()


def _changed_tanh_output(leaf, no_grad_block):
    a, b = leaf(r(3, 4)), leaf(r(4))
    ((a * 1.0).tanh().mul_(b) * a).sum().backward()


@pytest.mark.parametrize(
    "build, raises",
    [
        (_changed_tanh_output, True),
        (_changed_saved_intermediate, True),
        (_changed_saved_output, True),
        (_changed_parameter, True),
        (_leaf_in_grad_mode, True),
        (_view_of_a_leaf, True),
        (_unsaved_intermediate, False),
    ],
)
def test_version_and_leaf_errors_where_torch_raises(build, raises):
    kinone_error, torch_error = _both(build)
    assert (torch_error is not None) == raises, f"torch: {torch_error}"
    assert (kinone_error is not None) == raises, f"kinone: {kinone_error}"
    if raises and "in-place" in str(torch_error).replace("inplace", "in-place"):
        assert "in-place" in str(kinone_error)


def test_an_sgd_step_matches_torch():
    """The tutorial's manual SGD loop, a few steps, in both libraries."""
    x = np.linspace(-1, 1, 20)
    y = np.sin(3 * x)
    start = rng.standard_normal((3, 1))
    losses = {}
    for lib in ("kinone", "torch"):
        make = (
            (lambda a: torch.tensor(a, requires_grad=True))
            if lib == "torch"
            else (lambda a: Tensor(a.copy(), requires_grad=True))
        )
        params = [make(p) for p in start]
        xs, ys = (torch.tensor(x), torch.tensor(y)) if lib == "torch" else (Tensor(x), Tensor(y))
        block = torch.no_grad if lib == "torch" else no_grad
        history = []
        for _ in range(5):
            a, b, c = params
            loss = ((a + b * xs + c * xs * xs - ys) ** 2).sum()
            loss.backward()
            history.append(loss.item())
            with block():
                for p in params:
                    p -= 1e-2 * p.grad
                    p.grad = None
        losses[lib] = history
    np.testing.assert_allclose(losses["kinone"], losses["torch"], rtol=1e-10)


def test_mul_by_itself_differs_from_torch_by_giving_the_gradient():
    """torch's mul_ saves self, so `y.mul_(y)` then backward raises there; Kinone's saves a copy
    of the operand when it is the changed tensor, and gives d(y²)/dy = 2y."""
    kinone_error, torch_error = _both(lambda leaf, _: (lambda y: y.mul_(y))(leaf(r(4)) * 1.0).sum().backward())
    assert torch_error is not None and kinone_error is None
    x = Tensor(r(4), requires_grad=True)
    y = x * 1.0
    y.mul_(y).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy())
