"""RNN, LSTM, GRU, their cells and MultiheadAttention against torch.nn: the same state-dict keys
and shapes, and, with torch's weights loaded by name, the same outputs and gradients of the
inputs, the initial states and every parameter (float64 tight, float32 loose)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kinone import nn  # noqa: E402
from kinone.autograd import Tensor  # noqa: E402

TOLERANCE = {np.float64: dict(rtol=1e-9, atol=1e-11), np.float32: dict(rtol=2e-4, atol=2e-5)}
TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}


def loaded_pair(make, dtype):
    """(kinone module, torch module) with torch's initial weights copied into Kinone by key."""
    ours, theirs = make(nn), make(torch.nn).to(TORCH_DTYPE[dtype])
    ours.to(dtype)
    torch_sd = theirs.state_dict()
    assert list(ours.state_dict()) == list(torch_sd)
    for key, value in ours.state_dict().items():
        assert value.shape == tuple(torch_sd[key].shape), key
    ours.load_state_dict({k: v.numpy() for k, v in torch_sd.items()})
    return ours, theirs


def leaves(arrays, dtype):
    """The same arrays as Kinone and torch leaves requiring grad."""
    ours = [Tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    return ours, theirs


def flat(outputs):
    """An RNN's (output, h_n) or (output, (h_n, c_n)) as a flat list (an absent weight: None)."""
    result = []
    for out in outputs if isinstance(outputs, (tuple, list)) else [outputs]:
        result.extend(flat(out) if isinstance(out, (tuple, list)) else [out])
    return result


def check(ours, theirs, our_inputs, their_inputs, dtype, call=None):
    call = call or (lambda module, inputs: module(*inputs))
    our_out, their_out = flat(call(ours, our_inputs)), flat(call(theirs, their_inputs))
    assert [a is None for a in our_out] == [b is None for b in their_out]
    our_out, their_out = [a for a in our_out if a is not None], [b for b in their_out if b is not None]
    rng = np.random.default_rng(1)
    seeds = [rng.standard_normal(tuple(t.shape)).astype(dtype) for t in their_out]
    for a, b in zip(our_out, their_out):
        np.testing.assert_allclose(a.data, b.detach().numpy(), **TOLERANCE[dtype])
    sum((a * Tensor(s)).sum() for a, s in zip(our_out, seeds)).backward()
    sum((b * torch.tensor(s)).sum() for b, s in zip(their_out, seeds)).backward()
    for i, (a, b) in enumerate(zip(our_inputs, their_inputs)):
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), **TOLERANCE[dtype], err_msg=f"input {i}")
    named = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.data, named[name].grad.numpy(), **TOLERANCE[dtype], err_msg=name)


RNNS = {
    "LSTM": lambda m: m.LSTM(4, 5),
    "LSTM_2layers_bidirectional": lambda m: m.LSTM(4, 5, num_layers=2, bidirectional=True),
    "LSTM_batch_first_nobias": lambda m: m.LSTM(4, 5, num_layers=2, batch_first=True, bias=False),
    "LSTM_proj": lambda m: m.LSTM(4, 6, num_layers=2, proj_size=3),
    "GRU": lambda m: m.GRU(4, 5, num_layers=2),
    "GRU_bidirectional_batch_first": lambda m: m.GRU(4, 5, bidirectional=True, batch_first=True),
    "RNN_tanh": lambda m: m.RNN(4, 5, num_layers=3),
    "RNN_relu_positional": lambda m: m.RNN(4, 5, 2, "relu"),
    "RNN_relu_bidirectional": lambda m: m.RNN(4, 5, nonlinearity="relu", bidirectional=True, bias=False),
}


def _states(make, batch, dtype, rng):
    module = make(torch.nn)
    layers = module.num_layers * (2 if module.bidirectional else 1)
    out_size = getattr(module, "proj_size", 0) or module.hidden_size
    sizes = [out_size, module.hidden_size] if isinstance(module, torch.nn.LSTM) else [out_size]
    return [rng.standard_normal((layers, batch, s)) for s in sizes]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "given_state"])
@pytest.mark.parametrize("name", list(RNNS))
def test_recurrent_layer_matches_torch(name, with_state, dtype):
    make = RNNS[name]
    ours, theirs = loaded_pair(make, dtype)
    rng = np.random.default_rng(0)
    batch_first = theirs.batch_first
    x = rng.standard_normal((3, 6, 4) if batch_first else (6, 3, 4))
    arrays = [x] + (_states(make, 3, dtype, rng) if with_state else [])
    our_inputs, their_inputs = leaves(arrays, dtype)

    def call(module, inputs):
        if len(inputs) == 1:
            return module(inputs[0])
        state = tuple(inputs[1:]) if len(inputs) == 3 else inputs[1]
        return module(inputs[0], state)

    check(ours, theirs, our_inputs, their_inputs, dtype, call)


@pytest.mark.parametrize("name", ["LSTM_2layers_bidirectional", "GRU", "RNN_tanh"])
def test_unbatched_input_matches_torch(name):
    ours, theirs = loaded_pair(RNNS[name], np.float64)
    our_inputs, their_inputs = leaves([np.random.default_rng(2).standard_normal((5, 4))], np.float64)
    check(ours, theirs, our_inputs, their_inputs, np.float64)


CELLS = {
    "RNNCell": lambda m: m.RNNCell(4, 5),
    "RNNCell_relu_nobias": lambda m: m.RNNCell(4, 5, bias=False, nonlinearity="relu"),
    "LSTMCell": lambda m: m.LSTMCell(4, 5),
    "GRUCell": lambda m: m.GRUCell(4, 5),
    "GRUCell_nobias": lambda m: m.GRUCell(4, 5, bias=False),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("state", ["zero_state", "given_state", "unbatched"])
@pytest.mark.parametrize("name", list(CELLS))
def test_cell_matches_torch(name, state, dtype):
    ours, theirs = loaded_pair(CELLS[name], dtype)
    rng = np.random.default_rng(3)
    batch = () if state == "unbatched" else (3,)
    arrays = [rng.standard_normal((*batch, 4))]
    count = 2 if "LSTM" in name else 1
    if state != "zero_state":
        arrays += [rng.standard_normal((*batch, 5)) for _ in range(count)]
    our_inputs, their_inputs = leaves(arrays, dtype)

    def call(module, inputs):
        if len(inputs) == 1:
            return module(inputs[0])
        return module(inputs[0], tuple(inputs[1:]) if count == 2 else inputs[1])

    check(ours, theirs, our_inputs, their_inputs, dtype, call)


def test_a_cell_unrolled_by_hand_matches_torch_over_steps():
    ours, theirs = loaded_pair(CELLS["LSTMCell"], np.float64)
    xs = np.random.default_rng(4).standard_normal((4, 2, 4))
    our_inputs, their_inputs = leaves([xs], np.float64)

    def unroll(module, inputs):
        state, outputs = None, []
        for t in range(inputs[0].shape[0]):
            state = module(inputs[0][t], state)
            outputs.append(state[0])
        return outputs

    check(ours, theirs, our_inputs, their_inputs, np.float64, unroll)


MHA = {
    "self": (lambda m: m.MultiheadAttention(8, 2), "self", {}),
    "self_batch_first": (lambda m: m.MultiheadAttention(8, 4, batch_first=True), "self", {}),
    "cross_nobias": (lambda m: m.MultiheadAttention(8, 2, bias=False), "cross", {}),
    "kdim_vdim": (lambda m: m.MultiheadAttention(8, 2, kdim=6, vdim=3), "cross", {}),
    "bias_kv_zero_attn": (lambda m: m.MultiheadAttention(8, 2, add_bias_kv=True, add_zero_attn=True), "cross", {}),
    "per_head_weights": (lambda m: m.MultiheadAttention(8, 2), "self", {"average_attn_weights": False}),
    "no_weights": (lambda m: m.MultiheadAttention(8, 2), "self", {"need_weights": False}),
}

MASKS = {
    "no_mask": {},
    "causal_bool": {"attn_mask": np.triu(np.ones((5, 5), bool), 1)},
    "causal_float": {"attn_mask": np.triu(np.full((5, 5), -np.inf), 1)},
    "float_per_head": None,  # drawn for the module's number of heads
    "key_padding": {"key_padding_mask": np.array([[0, 0, 0, 1, 1], [0] * 5, [0, 0, 0, 0, 1]], bool)},
    "both_bool": {
        "attn_mask": np.triu(np.ones((5, 5), bool), 1),
        "key_padding_mask": np.array([[0, 0, 0, 1, 1], [0] * 5, [0, 0, 0, 0, 1]], bool),
    },
}


def _mha_arrays(kind, module, rng):
    batch_first = module.batch_first
    shape = lambda length, dim: (3, length, dim) if batch_first else (length, 3, dim)
    if kind == "self":
        return [rng.standard_normal(shape(5, 8))]
    return [
        rng.standard_normal(shape(5, 8)),
        rng.standard_normal(shape(5, module.kdim)),
        rng.standard_normal(shape(5, module.vdim)),
    ]


def _mha_call(options, masks, to_mask):
    def call(module, inputs):
        q, k, v = (inputs * 3) if len(inputs) == 1 else inputs
        return module(q, k, v, **{name: to_mask(m) for name, m in masks.items()}, **options)

    return call


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("mask", list(MASKS))
@pytest.mark.parametrize("name", list(MHA))
def test_multihead_attention_matches_torch(name, mask, dtype):
    make, kind, options = MHA[name]
    ours, theirs = loaded_pair(make, dtype)
    masks = MASKS[mask]
    if mask == "float_per_head":  # (N·num_heads, L, S)
        masks = {"attn_mask": np.random.default_rng(5).standard_normal((3 * theirs.num_heads, 5, 5))}
    our_inputs, their_inputs = leaves(_mha_arrays(kind, theirs, np.random.default_rng(6)), dtype)
    with np.errstate(invalid="ignore"):
        to_ours = lambda m: m.astype(dtype) if m.dtype != bool else m
        to_theirs = lambda m: torch.tensor(to_ours(m))
        our_call, their_call = _mha_call(options, masks, to_ours), _mha_call(options, masks, to_theirs)
        check(
            ours,
            theirs,
            our_inputs,
            their_inputs,
            dtype,
            lambda module, inputs: (our_call if module is ours else their_call)(module, inputs),
        )


def test_multihead_attention_unbatched_matches_torch():
    ours, theirs = loaded_pair(lambda m: m.MultiheadAttention(8, 2), np.float64)
    rng = np.random.default_rng(7)
    our_inputs, their_inputs = leaves([rng.standard_normal((5, 8)), rng.standard_normal((4, 8))], np.float64)
    mask = np.array([0, 0, 1, 0], bool)
    call = lambda module, inputs: module(
        inputs[0], inputs[1], inputs[1], key_padding_mask=mask if module is ours else torch.tensor(mask)
    )
    check(ours, theirs, our_inputs, their_inputs, np.float64, call)


def test_initialisation_follows_torch_rules():
    """Every RNN parameter in U(-1/√hidden, 1/√hidden); MHA biases zero; in_proj xavier-bounded."""
    lstm = nn.LSTM(16, 25, num_layers=2)
    for name, p in lstm.named_parameters():
        assert np.abs(p.data).max() <= 0.2 and np.abs(p.data).max() > 0.15, name
    mha = nn.MultiheadAttention(16, 4)
    assert not mha.in_proj_bias.data.any() and not mha.out_proj.bias.data.any()
    bound = np.sqrt(6 / (16 + 48))
    assert bound * 0.9 < np.abs(mha.in_proj_weight.data).max() <= bound
