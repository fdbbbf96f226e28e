"""dropout2d / Dropout2d: whole channels dropped with probability p, survivors scaled by
1/(1 - p) as torch's, identity in eval; the same statistics as torch's."""

from __future__ import annotations

import numpy as np
import pytest

from kinone import nn
from kinone.autograd import Tensor, manual_seed
from kinone.nn import functional as F


def test_whole_channels_are_dropped_and_the_rest_scaled():
    manual_seed(0)
    x = Tensor(np.random.default_rng(0).standard_normal((64, 16, 3, 3)).astype(np.float32), requires_grad=True)
    y = F.dropout2d(x, p=0.25)
    kept = (y.data != 0).reshape(64, 16, -1)
    assert np.all(kept == kept[..., :1]), "a channel is dropped or kept as a whole"
    assert 0.2 < np.mean(~kept[..., 0]) < 0.3
    expected_scale = np.where(y.data != 0, np.float32(1 / 0.75), np.float32(0))
    np.testing.assert_allclose(y.data, x.data * expected_scale, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, expected_scale)


def test_eval_and_p_zero_return_the_input():
    x = Tensor(np.ones((2, 3, 4, 4), np.float32))
    layer = nn.Dropout2d(0.5).eval()
    assert layer(x) is x
    assert F.dropout2d(x, 0.0) is x
    assert repr(nn.Dropout2d(0.3)) == "Dropout2d(p=0.3, inplace=False)"


def test_errors_name_the_op():
    with pytest.raises(ValueError, match=r"dropout2d: expected an input of shape \(N, C, H, W\)"):
        F.dropout2d(Tensor(np.ones((2, 3), np.float32)))
    with pytest.raises(ValueError, match="dropout2d: p is the probability"):
        F.dropout2d(Tensor(np.ones((2, 3, 4, 4), np.float32)), p=1.5)


def test_matches_torch_statistics():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.functional.dropout2d(torch.ones(256, 32, 2, 2), p=0.4)
    ours = F.dropout2d(Tensor(np.ones((256, 32, 2, 2), np.float32)), p=0.4)
    assert set(np.unique(theirs.numpy())) == set(np.unique(ours.data))  # {0, 1/(1 - p)}
    assert abs(np.mean(ours.data == 0) - np.mean(theirs.numpy() == 0)) < 0.05
