"""In-place changes made by kinone-nn (optimizer steps, init, load_state_dict, zero_grad
without set_to_none) bump the versions of the tensors they change, so a backward through
a graph recorded before the change raises instead of giving wrong gradients (before: off by
up to 0.78, silently).
"""

from __future__ import annotations

import numpy as np
import pytest

from kinone import nn
from kinone.autograd import Tensor, manual_seed
from kinone.nn import init
from kinone.optim import SGD, Adam, AdamW

# The layer's own init already bumped the weight's version once per fill.
MODIFIED = r"Linear.* modified by an in-place operation: .* saved input 1 of shape \(3, 4\) at version (\d+); it is now at version \d+"

OPTIMIZERS = {
    "sgd": lambda params: SGD(params, lr=0.1),
    "sgd_momentum_nesterov_decay": lambda params: SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
    "adam": lambda params: Adam(params, lr=0.1),
    "adamw_amsgrad": lambda params: AdamW(params, lr=0.1, amsgrad=True),
}


def _layer_and_input():
    manual_seed(0)
    layer = nn.Linear(4, 3)
    x = Tensor(np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32), requires_grad=True)
    return layer, x


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_step_between_forward_and_backward_raises(name):
    layer, x = _layer_and_input()
    optimizer = OPTIMIZERS[name](layer.parameters())
    layer(x).sum().backward()
    loss = layer(x).sum()  # recorded with the weights of version 0
    optimizer.step()
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_step_bumps_the_version_of_each_parameter_it_updates(name):
    layer, x = _layer_and_input()
    frozen = nn.Parameter(np.ones(2, dtype=np.float32))  # no gradient: skipped, not bumped
    optimizer = OPTIMIZERS[name](list(layer.parameters()) + [frozen])
    weight_version, bias_version = layer.weight._version, layer.bias._version
    for step in (1, 2):
        optimizer.zero_grad()
        layer(x).sum().backward()
        optimizer.step()
        assert (layer.weight._version, layer.bias._version) == (weight_version + step, bias_version + step)
        assert frozen._version == 0


def test_the_usual_loop_still_trains():
    layer, x = _layer_and_input()
    optimizer = SGD(layer.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = (layer(x) ** 2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_gradient_accumulation_over_steps_is_unaffected():
    """Backward of two forwards made before the step: allowed, both graphs saw version 0."""
    layer, x = _layer_and_input()
    optimizer = Adam(layer.parameters(), lr=0.1)
    first, second = layer(x).sum(), layer(x * 2.0).sum()
    first.backward()
    second.backward()
    optimizer.step()
    np.testing.assert_allclose(layer.bias.grad.data, np.full(3, 4.0))


@pytest.mark.parametrize(
    "fill",
    [
        lambda w: init.normal_(w),
        lambda w: init.uniform_(w, -1, 1),
        lambda w: init.kaiming_uniform_(w),
        lambda w: init.xavier_normal_(w),
        lambda w: init.trunc_normal_(w),
        lambda w: init.zeros_(w),
        lambda w: init.constant_(w, 0.5),
    ],
    ids=["normal_", "uniform_", "kaiming_uniform_", "xavier_normal_", "trunc_normal_", "zeros_", "constant_"],
)
def test_init_bumps_the_version(fill):
    layer, x = _layer_and_input()
    loss = layer(x).sum()
    before = layer.weight._version
    fill(layer.weight)
    assert layer.weight._version == before + 1
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()


def test_init_of_a_plain_array_still_works():
    array = np.zeros((3, 4), dtype=np.float32)
    init.ones_(array)
    np.testing.assert_array_equal(array, 1.0)


def test_load_state_dict_bumps_parameters_and_buffers():
    manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    x = Tensor(np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32), requires_grad=True)
    loss = model(x).sum()  # Linear saves its weight for dL/dx
    tensors = model.state_dict(keep_vars=True)
    before = {key: t._version for key, t in tensors.items()}
    model.load_state_dict({key: np.array(t.data) for key, t in tensors.items()})
    assert {key: t._version for key, t in tensors.items()} == {key: v + 1 for key, v in before.items()}
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()


def test_zero_grad_without_set_to_none_bumps_the_grad_version():
    layer, x = _layer_and_input()
    optimizer = SGD(layer.parameters(), lr=0.1)
    layer(x).sum().backward()
    grad = layer.weight.grad
    layer.zero_grad(set_to_none=False)
    assert grad._version == 1
    optimizer.zero_grad(set_to_none=False)
    assert grad._version == 2 and not grad.data.any()


def test_a_training_forward_between_an_eval_forward_and_its_backward_is_caught():
    from kinone import nn
    from kinone.autograd import Tensor

    bn = nn.BatchNorm2d(3)
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3, 5, 5)).astype(np.float32), requires_grad=True)
    bn.eval()
    out = bn(x).sum()
    bn.train()
    bn(x)  # updates the running statistics the eval graph saved
    with pytest.raises(RuntimeError, match="BatchNormEval.*version"):
        out.backward()


@pytest.mark.parametrize("name", ["silu", "gelu"])
def test_silu_and_gelu_refuse_integers_as_pytorch_does(name):
    from kinone.nn import functional as F

    with pytest.raises(TypeError, match=f"{name}: needs a floating-point tensor"):
        getattr(F, name)(Tensor(np.arange(3)))
