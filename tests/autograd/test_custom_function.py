"""Custom Functions written the PyTorch way (`TensorFunction`): forward and backward on Tensors,
`ctx.save_for_backward` / `ctx.saved_tensors` with the version check, `ctx.needs_input_grad`,
non-tensor arguments, gradcheck, and the examples of PyTorch's "Extending PyTorch" page
against torch. The array form (`Function`) keeps working unchanged beside it."""

from __future__ import annotations

import numpy as np
import pytest

from kinone.autograd import Function, Tensor, TensorFunction, backend, gradcheck, no_grad, once_differentiable, trace

rng = np.random.default_rng(11)


def leaf(*shape):
    return Tensor(rng.standard_normal(shape), requires_grad=True)


# The examples of https://pytorch.org/docs/stable/notes/extending.html, as a PyTorch user writes
# them (LinearFunction with `@` and `.T` where the page uses mm and t()).
class Exp(TensorFunction):
    """y = exp(x);  dL/dx = g * y."""

    @staticmethod
    def forward(ctx, i):
        result = i.exp()
        ctx.save_for_backward(result)
        return result

    @staticmethod
    def backward(ctx, grad_output):
        (result,) = ctx.saved_tensors
        return grad_output * result


class LinearFunction(TensorFunction):
    """y = x W^T + b;  dL/dx = g W;  dL/dW = g^T x;  dL/db = sum(g)."""

    @staticmethod
    def forward(ctx, input, weight, bias=None):
        ctx.save_for_backward(input, weight, bias)
        output = input @ weight.T
        if bias is not None:
            output += bias.unsqueeze(0).expand(*output.shape)
        return output

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        input, weight, bias = ctx.saved_tensors
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = grad_output @ weight
        if ctx.needs_input_grad[1]:
            grad_weight = grad_output.T @ input
        if bias is not None and ctx.needs_input_grad[2]:
            grad_bias = grad_output.sum(0)
        return grad_input, grad_weight, grad_bias


class MulConstant(TensorFunction):
    """y = c x;  dL/dx = c g (c a Python number passed through apply)."""

    @staticmethod
    def forward(ctx, tensor, constant):
        ctx.constant = constant
        return tensor * constant

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output * ctx.constant, None


def test_gradcheck_passes_on_the_pytorch_examples():
    x, w, b = leaf(3, 4), leaf(5, 4), leaf(5)
    assert gradcheck(lambda a: Exp.apply(a), [x])
    assert gradcheck(lambda a, w, b: LinearFunction.apply(a, w, b), [x, w, b])
    assert gradcheck(lambda a, w: LinearFunction.apply(a, w), [x, w])
    assert gradcheck(lambda a: MulConstant.apply(a, 2.5), [x])


def test_the_output_is_a_graph_node_named_after_the_function():
    x = leaf(3)
    y = Exp.apply(x)
    assert isinstance(y.grad_fn, Exp) and y.requires_grad
    assert "ExpBackward" in repr(y)
    with no_grad():
        z = Exp.apply(x)
    assert z.grad_fn is None and not z.requires_grad


def test_needs_input_grad_has_one_flag_per_argument():
    seen = []

    class Probe(TensorFunction):
        """y = a + b;  dL/da = g;  dL/db = g."""

        @staticmethod
        def forward(ctx, a, b, scale):
            seen.append(ctx.needs_input_grad)
            return a + b

        @staticmethod
        def backward(ctx, g):
            return g, g, None

    Probe.apply(leaf(2), Tensor(np.ones(2)), 3.0).sum().backward()
    assert seen == [(True, False, False)]


def test_saved_tensors_refuses_a_tensor_changed_in_place():
    class Square(TensorFunction):
        """y = x²;  dL/dx = 2 x g."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g

    x = leaf(3)
    h = x * 1.0
    y = Square.apply(h)
    h.add_(1.0)
    with pytest.raises(
        RuntimeError,
        match=r"Square: .*modified by an in-place operation: saved tensor 0 of shape \(3,\) "
        r"was saved at version 0; it is now at version 1",
    ):
        y.sum().backward()


def test_a_saved_output_changed_in_place_is_refused():
    x = leaf(3)
    y = Exp.apply(x)
    y.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.sum().backward()


def test_a_second_backward_without_retain_graph_raises():
    x = leaf(3)
    y = Exp.apply(x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_mark_non_differentiable():
    class ArgMaxMask(TensorFunction):
        """y = (x == max(x)) as 0/1;  dL/dx = 0 (not differentiable)."""

        @staticmethod
        def forward(ctx, x):
            out = (x == x.max()) * 1.0
            ctx.mark_non_differentiable(out)
            return out

        @staticmethod
        def backward(ctx, g):  # pragma: no cover - never called
            raise AssertionError

    out = ArgMaxMask.apply(leaf(4))
    assert not out.requires_grad and out.grad_fn is None


@pytest.mark.parametrize(
    "returned, message",
    [
        (lambda g: g, r"Bad.backward returned 1 gradients; expected 2, one per argument of forward"),
        (lambda g: (g, g), r"Bad.backward returned a gradient for argument 1, which is not a Tensor"),
        (lambda g: (g, None, g), r"Bad.backward returned 3 gradients; expected 2"),
    ],
)
def test_wrong_backward_returns_are_named(returned, message):
    class Bad(TensorFunction):
        """y = x;  dL/dx = g."""

        @staticmethod
        def forward(ctx, x, option):
            return x * 1.0

        @staticmethod
        def backward(ctx, g):
            return returned(g)

    with pytest.raises(RuntimeError, match=message):
        Bad.apply(leaf(2), "option").sum().backward()


def test_forward_must_return_one_tensor():
    class Two(TensorFunction):
        """y = (x, x);  dL/dx = g1 + g2."""

        @staticmethod
        def forward(ctx, x):
            return x * 1.0, x * 2.0

    with pytest.raises(TypeError, match="Two.forward returned 2 outputs; a Kinone graph node has one output"):
        Two.apply(leaf(2))


def test_only_tensors_can_be_saved():
    class SavesNumber(TensorFunction):
        """y = x;  dL/dx = g."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x, 3.0)
            return x * 1.0

    with pytest.raises(TypeError, match="SavesNumber.save_for_backward: argument 1 is a float"):
        SavesNumber.apply(leaf(2))


def test_the_array_form_is_unchanged_beside_it():
    class Cube(Function):
        """y = x³;  dL/dx = 3 x² g (arrays in, arrays out)."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x**3

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved
            return 3 * x**2 * g

    x = leaf(3)
    assert gradcheck(lambda a: Cube.apply(a), [x])
    assert gradcheck(lambda a: Cube.apply(Exp.apply(a)), [x])


def test_tracing_reports_the_custom_function():
    x = leaf(2)
    with trace() as records:
        MulConstant.apply(x, 4.0)
    assert records[-1].function is MulConstant and records[-1].attrs == {"arguments": (4.0,)}


def test_the_onnx_exporter_refuses_a_custom_function_naming_it():
    pytest.importorskip("onnx")
    nn = pytest.importorskip("kinone.nn")
    kinone_onnx = pytest.importorskip("kinone.onnx")

    class Model(nn.Module):
        def forward(self, x):
            return Exp.apply(x)

    with pytest.raises(kinone_onnx.ExportError, match=r"no ONNX converter for .*Exp"):
        kinone_onnx.build_model(Model(), Tensor(np.ones((2, 3), dtype=np.float32)))


def test_on_the_standin_device():
    with backend.use_standin_cuda():
        x = leaf(3, 4).detach().cuda().requires_grad_()
        w = leaf(5, 4).detach().cuda().requires_grad_()
        y = LinearFunction.apply(Exp.apply(x), w)
        y.sum().backward()
        assert y.is_cuda and x.grad.is_cuda and w.grad.is_cuda
        assert gradcheck(lambda a: MulConstant.apply(Exp.apply(a), 2.0), [x])


# ---------------------------------------------------------------------- parity with torch
def _torch_examples(torch):
    class TorchExp(torch.autograd.Function):
        @staticmethod
        def forward(ctx, i):
            result = i.exp()
            ctx.save_for_backward(result)
            return result

        @staticmethod
        def backward(ctx, grad_output):
            (result,) = ctx.saved_tensors
            return grad_output * result

    class TorchLinear(torch.autograd.Function):
        @staticmethod
        def forward(ctx, input, weight, bias=None):
            ctx.save_for_backward(input, weight, bias)
            output = input.mm(weight.t())
            if bias is not None:
                output += bias.unsqueeze(0).expand_as(output)
            return output

        @staticmethod
        def backward(ctx, grad_output):
            input, weight, bias = ctx.saved_tensors
            grad_input = grad_weight = grad_bias = None
            if ctx.needs_input_grad[0]:
                grad_input = grad_output.mm(weight)
            if ctx.needs_input_grad[1]:
                grad_weight = grad_output.t().mm(input)
            if bias is not None and ctx.needs_input_grad[2]:
                grad_bias = grad_output.sum(0)
            return grad_input, grad_weight, grad_bias

    return TorchExp, TorchLinear


@pytest.mark.parametrize("with_bias", [True, False])
def test_the_extending_pytorch_examples_match_torch(with_bias):
    torch = pytest.importorskip("torch")
    TorchExp, TorchLinear = _torch_examples(torch)
    arrays = [rng.standard_normal((4, 3)), rng.standard_normal((2, 3)), rng.standard_normal(2)]
    if not with_bias:
        arrays = arrays[:2]
    cotangent = rng.standard_normal((4, 2))

    k = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    k_out = LinearFunction.apply(Exp.apply(k[0]), *k[1:])
    k_out.backward(Tensor(cotangent))
    t = [torch.tensor(a, requires_grad=True) for a in arrays]
    t_out = TorchLinear.apply(TorchExp.apply(t[0]), *t[1:])
    t_out.backward(torch.tensor(cotangent))

    np.testing.assert_allclose(k_out.numpy(), t_out.detach().numpy(), rtol=1e-12)
    for kx, tx in zip(k, t):
        np.testing.assert_allclose(kx.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


def test_a_non_leaf_saved_and_changed_raises_in_both():
    torch = pytest.importorskip("torch")
    TorchExp, _ = _torch_examples(torch)
    for fn, make in (
        (Exp, lambda a: Tensor(a, requires_grad=True)),
        (TorchExp, lambda a: torch.tensor(a, requires_grad=True)),
    ):
        y = fn.apply(make(rng.standard_normal(3)) * 1.0)
        y.add_(1.0)
        with pytest.raises(RuntimeError, match=r"modified by an in-?place operation"):
            y.sum().backward()
