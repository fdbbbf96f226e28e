"""Parity with torch.nn: leaky_relu, elu, softplus, relu6, hardsigmoid, hardswish, mish
(functional and modules: output and input gradient, float64 and float32, the kinks included,
with PyTorch's gradient choices there; large inputs stay finite)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

from kinone import nn  # noqa: E402
from kinone.autograd import Tensor  # noqa: E402
from kinone.nn import functional as F  # noqa: E402

TOLERANCES = {np.float64: (1e-7, 1e-12), np.float32: (1e-5, 1e-6)}

# Points on every piece, on the kinks (0, ±3, 6), and far out (exp must neither overflow nor
# lose the linear regime).
POINTS = np.array(
    [
        -1000.0,
        -30.0,
        -6.0,
        -3.0,
        -2.9,
        -1.0,
        -1e-3,
        0.0,
        1e-3,
        0.5,
        2.9,
        3.0,
        5.9,
        6.0,
        6.1,
        9.9,
        10.1,
        20.0,
        25.0,
        1000.0,
    ]
)

CASES = [
    ("leaky_relu", {}, "LeakyReLU"),
    ("leaky_relu", {"negative_slope": 0.2}, "LeakyReLU"),
    ("elu", {}, "ELU"),
    ("elu", {"alpha": 0.7}, "ELU"),
    ("softplus", {}, "Softplus"),
    ("softplus", {"beta": 2.0, "threshold": 10.0}, "Softplus"),
    ("relu6", {}, "ReLU6"),
    ("hardsigmoid", {}, "Hardsigmoid"),
    ("hardswish", {}, "Hardswish"),
    ("mish", {}, "Mish"),
]


def compare(ours_fn, theirs_fn, dtype):
    rng = np.random.default_rng(0)
    x = np.concatenate([POINTS, rng.standard_normal(40) * 4]).astype(dtype)
    upstream = rng.standard_normal(x.shape).astype(dtype)
    x_k, x_t = Tensor(x.copy(), requires_grad=True), torch.tensor(x.copy(), requires_grad=True)
    y_k, y_t = ours_fn(x_k), theirs_fn(x_t)
    (y_k * Tensor(upstream)).sum().backward()
    (y_t * torch.tensor(upstream)).sum().backward()
    rtol, atol = TOLERANCES[dtype]
    for what, ours, theirs in (
        ("output", y_k.data, y_t.detach().numpy()),
        ("gradient", x_k.grad.data, x_t.grad.numpy()),
    ):
        assert ours.dtype == theirs.dtype == dtype, what
        assert np.isfinite(ours).all(), what
        np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, err_msg=what)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, options, module", CASES, ids=[f"{n}-{o}" for n, o, _ in CASES])
def test_functional(name, options, module, dtype):
    compare(lambda x: getattr(F, name)(x, **options), lambda x: getattr(TF, name)(x, **options), dtype)


@pytest.mark.parametrize("name, options, module", CASES, ids=[f"{n}-{o}" for n, o, _ in CASES])
def test_module(name, options, module):
    ours, theirs = getattr(nn, module)(**options), getattr(torch.nn, module)(**options)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == []
    compare(ours, theirs, np.float32)


def test_integer_input_is_an_error_naming_the_op():
    with pytest.raises(TypeError, match="hardswish"):
        F.hardswish(Tensor(np.arange(3)))
