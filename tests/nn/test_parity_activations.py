"""Parity with torch for the activations kinone.nn defines itself (SiLU, GELU, erf): outputs and
gradients over a range that covers both tails, float64 to 1e-7 and float32 to 1e-4 (float32
erf is Abramowitz-Stegun 7.1.26, absolute error 1.5e-7)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kinone.autograd import Tensor  # noqa: E402
from kinone.nn import functional as F  # noqa: E402

TOLERANCES = {np.float64: (1e-7, 1e-10), np.float32: (1e-4, 1e-6)}
OPS = {
    "silu": (F.silu, torch.nn.functional.silu),
    "gelu": (F.gelu, torch.nn.functional.gelu),
    "erf": (F.erf, torch.erf),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(OPS))
def test_forward_and_gradient_match_torch(name, dtype):
    ours_fn, torch_fn = OPS[name]
    values = np.concatenate([np.linspace(-8, 8, 161), np.random.default_rng(0).standard_normal(200) * 2]).astype(dtype)
    upstream = np.random.default_rng(1).standard_normal(values.shape).astype(dtype)
    x = Tensor(values, requires_grad=True)
    y = ours_fn(x)
    y.backward(Tensor(upstream))
    tx = torch.tensor(values, requires_grad=True)
    ty = torch_fn(tx)
    ty.backward(torch.tensor(upstream))
    rtol, atol = TOLERANCES[dtype]
    assert y.dtype == x.grad.dtype == dtype
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=rtol, atol=atol, err_msg=f"{name} forward")
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=rtol, atol=atol, err_msg=f"{name} gradient")
