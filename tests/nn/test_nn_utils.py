"""kinone.nn.utils against torch.nn.utils: clip_grad_norm_ / clip_grad_value_ and flat vectors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kinone import nn
from kinone.autograd import Tensor, backend
from kinone.nn.utils import clip_grad_norm_, clip_grad_value_, parameters_to_vector, vector_to_parameters


def params_with_grads(seed=0, scale=1.0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    params = [Tensor(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in [(3, 4), (4,), (2, 2, 2)]]
    for p in params:
        p.grad = Tensor((rng.standard_normal(p.shape) * scale).astype(dtype))
    return params


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    torch = pytest.importorskip("torch")
    ours = params_with_grads(scale=2.0, dtype=np.float64)
    theirs = [torch.tensor(p.data.copy(), requires_grad=True) for p in ours]
    for t, p in zip(theirs, ours):
        t.grad = torch.tensor(p.grad.data.copy())
    total = clip_grad_norm_(ours, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    np.testing.assert_allclose(float(total.data), float(expected), rtol=1e-12)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.data, t.grad.numpy(), rtol=1e-12)


def test_clipping_bumps_versions_and_skips_parameters_without_grad():
    params = params_with_grads(scale=10.0)
    params.append(Tensor(np.ones(2, np.float32), requires_grad=True))  # no grad
    versions = [p.grad._version for p in params[:3]]
    clip_grad_norm_(params, 1.0)
    assert [p.grad._version for p in params[:3]] == [v + 1 for v in versions]
    assert params[3].grad is None
    assert float(sum((p.grad.data.astype(np.float64) ** 2).sum() for p in params[:3]) ** 0.5) == pytest.approx(
        1.0, rel=1e-5
    )


def test_nonfinite_norm_is_an_error_when_asked():
    params = params_with_grads()
    params[0].grad.data[0, 0] = np.inf
    with pytest.raises(RuntimeError, match="the total norm of order 2.0 of the gradients is inf"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)


def test_clip_grad_value_and_a_single_tensor():
    params = params_with_grads(scale=3.0)
    clip_grad_value_(params, 0.5)
    assert all(np.abs(p.grad.data).max() <= 0.5 for p in params)
    one = params_with_grads(scale=3.0)[0]
    total = clip_grad_norm_(one, 1.0)
    assert float(total.data) > 1.0 and np.linalg.norm(one.grad.data) == pytest.approx(1.0, rel=1e-5)


def test_parameters_vector_round_trip():
    model = nn.Linear(3, 2)
    vec = parameters_to_vector(model.parameters())
    assert vec.shape == (8,)
    vector_to_parameters(Tensor(np.arange(8, dtype=np.float32)), model.parameters())
    np.testing.assert_array_equal(model.weight.data.ravel(), np.arange(6))
    with pytest.raises(ValueError, match="the parameters hold 8 values"):
        vector_to_parameters(Tensor(np.zeros(5, np.float32)), model.parameters())


def test_clipping_on_the_standin_device():
    with backend.use_standin_cuda():
        params = [p.cuda() for p in params_with_grads(scale=5.0)]
        for p, source in zip(params, params_with_grads(scale=5.0)):
            p.grad = source.grad.cuda()
        total = clip_grad_norm_(params, 1.0)
        clip_grad_value_(params, 0.1)
        assert total.is_cuda and all(p.grad.is_cuda for p in params)
