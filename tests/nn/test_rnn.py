"""Recurrent layers and attention: shapes, arguments, errors, dropout between layers, finite
differences through the composed steps, the stand-in CUDA device, and
scaled_dot_product_attention against torch."""

from __future__ import annotations

import numpy as np
import pytest

from kinone import nn
from kinone.autograd import Tensor, backend, gradcheck, manual_seed
from kinone.autograd.testing import device_parity
from kinone.nn import functional as F


def _x(*shape, seed=0, dtype=np.float32):
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


@pytest.mark.parametrize(
    "make, out_size, state_count",
    [
        (lambda: nn.LSTM(4, 5, num_layers=2, bidirectional=True), 10, 2),
        (lambda: nn.GRU(4, 5, num_layers=3), 5, 1),
        (lambda: nn.RNN(4, 5, nonlinearity="relu"), 5, 1),
        (lambda: nn.LSTM(4, 6, proj_size=2), 2, 2),
    ],
)
def test_output_and_state_shapes(make, out_size, state_count):
    module = make()
    output, state = module(_x(7, 3, 4))
    assert output.shape == (7, 3, out_size)
    states = state if state_count == 2 else (state,)
    layers = module.num_layers * module.num_directions
    assert states[0].shape == (layers, 3, module.proj_size or module.hidden_size)
    if state_count == 2:
        assert states[1].shape == (layers, 3, module.hidden_size)


def test_state_dict_keys_follow_pytorch():
    keys = list(nn.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2).state_dict())
    assert keys[:5] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_hr_l0"]
    assert keys[5] == "weight_ih_l0_reverse" and keys[-1] == "weight_hr_l1_reverse"
    assert list(nn.GRUCell(3, 4, bias=False).state_dict()) == ["weight_ih", "weight_hh"]
    assert list(nn.MultiheadAttention(8, 2, kdim=4).state_dict()) == [
        "q_proj_weight",
        "k_proj_weight",
        "v_proj_weight",
        "in_proj_bias",
        "out_proj.weight",
        "out_proj.bias",
    ]


def test_wrong_initial_state_shape_names_the_expected_shape():
    with pytest.raises(ValueError, match=r"GRU: expected h_0 of shape \(2, 3, 5\), got \(1, 3, 5\)"):
        nn.GRU(4, 5, num_layers=2)(_x(6, 3, 4), _x(1, 3, 5))
    with pytest.raises(ValueError, match=r"LSTM: hx must be a tuple \(h_0, c_0\)"):
        nn.LSTM(4, 5)(_x(6, 3, 4), (_x(1, 3, 5),))


def test_bad_arguments_are_refused_in_one_line():
    with pytest.raises(ValueError, match="input of shape .* input_size=4"):
        nn.LSTM(4, 5)(_x(6, 3, 3))
    with pytest.raises(ValueError, match="unknown nonlinearity 'sigmoid'"):
        nn.RNN(4, 5, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="proj_size is only supported by LSTM"):
        nn.GRU(4, 5, proj_size=2)
    with pytest.raises(ValueError, match="dropout must be a number in"):
        nn.LSTM(4, 5, dropout=1.5)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        nn.MultiheadAttention(10, 3)
    with pytest.raises(ValueError, match=r"attn_mask of shape \(4, 4\) should be"):
        nn.MultiheadAttention(8, 2)(_x(5, 2, 8), _x(5, 2, 8), _x(5, 2, 8), attn_mask=np.zeros((4, 4), bool))


def test_dropout_with_a_single_layer_warns_as_pytorch():
    with pytest.warns(UserWarning, match="no effect with num_layers=1"):
        nn.GRU(4, 5, dropout=0.3)


def test_dropout_between_layers_in_training_only():
    lstm = nn.LSTM(4, 5, num_layers=2, dropout=0.5)
    x = _x(6, 3, 4)
    manual_seed(0)
    first = lstm(x)[0].data
    manual_seed(1)
    assert not np.allclose(first, lstm(x)[0].data)
    lstm.eval()
    np.testing.assert_array_equal(lstm(x)[0].data, lstm(x)[0].data)


def test_flatten_parameters_is_accepted_and_changes_nothing():
    lstm = nn.LSTM(4, 5)
    before = {k: v.copy() for k, v in lstm.state_dict().items()}
    lstm.flatten_parameters()
    assert all(np.array_equal(v, before[k]) for k, v in lstm.state_dict().items())


def test_extra_repr_follows_pytorch():
    assert repr(nn.LSTM(4, 5, num_layers=2, batch_first=True)) == "LSTM(4, 5, num_layers=2, batch_first=True)"
    assert repr(nn.RNNCell(4, 5, nonlinearity="relu")) == "RNNCell(4, 5, nonlinearity=relu)"


def _float64(module):
    module.to(np.float64)
    return module


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.LSTM(3, 2, num_layers=2, bidirectional=True),
        lambda: nn.GRU(3, 2, batch_first=True),
        lambda: nn.RNN(3, 2, nonlinearity="tanh"),
    ],
    ids=["LSTM", "GRU", "RNN"],
)
def test_gradients_through_the_composed_steps_match_finite_differences(make):
    module = _float64(make())
    params = list(module.parameters())
    x = Tensor(np.random.default_rng(1).standard_normal((3, 2, 3)), requires_grad=True)
    h0 = Tensor(
        np.random.default_rng(2).standard_normal(
            (module.num_layers * module.num_directions, 2 if not module.batch_first else 3, 2)
        ),
        requires_grad=True,
    )

    def run(x, h0, *weights):
        state = (h0, h0 * 0.5) if isinstance(module, nn.LSTM) else h0
        output, _ = module(x, state)
        return output

    assert gradcheck(run, [x, h0, *params])


def test_attention_gradients_match_finite_differences():
    mha = _float64(nn.MultiheadAttention(4, 2, add_bias_kv=True))
    rng = np.random.default_rng(3)
    q, k = (Tensor(rng.standard_normal(s), requires_grad=True) for s in [(3, 2, 4), (5, 2, 4)])
    padding = np.array([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]], bool)
    assert gradcheck(lambda q, k, *w: mha(q, k, k, key_padding_mask=padding)[0], [q, k, *mha.parameters()])


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: nn.LSTM(3, 4, num_layers=2), (5, 2, 3)),
        (lambda: nn.GRUCell(3, 4), (2, 3)),
        (lambda: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0), (5, 2, 8)),
    ],
    ids=["LSTM", "GRUCell", "TransformerEncoderLayer"],
)
def test_same_results_on_the_standin_cuda_device(make, shape):
    module = _float64(make())
    mask = nn.Transformer.generate_square_subsequent_mask(shape[0], dtype=np.float64)
    is_encoder = isinstance(module, nn.TransformerEncoderLayer)

    def run(x):
        module.to(x.device)
        if is_encoder:
            return module(x, src_mask=mask.to(x.device))
        out = module(x)
        return out[0] if isinstance(out, tuple) else out

    with backend.use_standin_cuda():
        device_parity(run, [np.random.default_rng(4).standard_normal(shape)])


@pytest.mark.parametrize("mask", ["none", "bool", "float", "causal"])
def test_scaled_dot_product_attention_matches_torch(mask):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal(s) for s in [(2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 5)]]
    masks = {"none": None, "bool": rng.random((4, 6)) > 0.3, "float": rng.standard_normal((2, 1, 4, 6)), "causal": None}
    kwargs_ours = {"attn_mask": masks[mask], "is_causal": mask == "causal"}
    kwargs_theirs = {
        "attn_mask": None if masks[mask] is None else torch.tensor(masks[mask]),
        "is_causal": mask == "causal",
    }
    ours = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out_ours = F.scaled_dot_product_attention(*ours, **kwargs_ours)
    out_theirs = torch.nn.functional.scaled_dot_product_attention(*theirs, **kwargs_theirs)
    np.testing.assert_allclose(out_ours.data, out_theirs.detach().numpy(), rtol=1e-9, atol=1e-12)
    out_ours.sum().backward()
    out_theirs.sum().backward()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=1e-9, atol=1e-12)
