"""Transformer layers against torch.nn (state-dict keys, outputs, input and parameter gradients),
pytorch/examples' word_language_model models written once and run on both frameworks, and
ONNX exports of an LSTM and a TransformerEncoderLayer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kinone import nn
from kinone.autograd import Tensor
from kinone.nn import functional as F


def test_generate_square_subsequent_mask_is_causal():
    mask = nn.Transformer.generate_square_subsequent_mask(4).data
    assert mask.dtype == np.float32 and mask.shape == (4, 4)
    assert (mask[np.tril_indices(4)] == 0).all() and np.isneginf(mask[np.triu_indices(4, 1)]).all()
    assert nn.Transformer.generate_square_subsequent_mask(3, dtype=np.float64).dtype == np.float64


def test_encoder_clones_are_independent_copies_with_equal_initial_weights():
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 3, enable_nested_tensor=False)
    first, second = encoder.layers[0].linear1.weight, encoder.layers[1].linear1.weight
    assert first is not second and np.array_equal(first.data, second.data)
    assert len(list(encoder.state_dict())) == 3 * len(nn.TransformerEncoderLayer(8, 2, 16).state_dict())


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="activation should be 'relu', 'gelu'"):
        nn.TransformerEncoderLayer(8, 2, activation="swish")


def test_causal_hint_without_a_mask_is_refused_as_pytorch():
    layer = nn.TransformerEncoderLayer(8, 2, 16)
    with pytest.raises(ValueError, match="is_causal=True needs attn_mask"):
        layer(Tensor(np.zeros((3, 2, 8), np.float32)), is_causal=True)


def test_dropout_in_training_only():
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.5)
    x = Tensor(np.random.default_rng(0).standard_normal((4, 2, 8)).astype(np.float32))
    assert not np.allclose(layer(x).data, layer(x).data)
    layer.eval()
    np.testing.assert_array_equal(layer(x).data, layer(x).data)


# ---------------------------------------------------------------------- parity with torch
def _torch():
    return pytest.importorskip("torch")


def _pair(make):
    torch = _torch()
    ours, theirs = make(nn), make(torch.nn).double()
    ours.to(np.float64)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def _compare(ours, theirs, arrays, our_kwargs, their_kwargs, rtol=1e-9, atol=1e-11):
    torch = _torch()
    our_in = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    their_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    out_ours, out_theirs = ours(*our_in, **our_kwargs), theirs(*their_in, **their_kwargs)
    np.testing.assert_allclose(out_ours.data, out_theirs.detach().numpy(), rtol=rtol, atol=atol)
    seed = np.random.default_rng(9).standard_normal(out_theirs.shape)
    (out_ours * Tensor(seed)).sum().backward()
    (out_theirs * torch.tensor(seed)).sum().backward()
    for a, b in zip(our_in, their_in):
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=rtol, atol=atol)
    named = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.data, named[name].grad.numpy(), rtol=rtol, atol=atol, err_msg=name)


CAUSAL = np.triu(np.full((5, 5), -np.inf), 1)
PADDING = np.array([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1]], bool)

ENCODER_LAYERS = {
    "post_norm_relu": dict(),
    "pre_norm_gelu": dict(norm_first=True, activation="gelu"),
    "batch_first_nobias": dict(batch_first=True, bias=False),
    "eps": dict(layer_norm_eps=1e-3),
}


@pytest.mark.parametrize("masks", ["none", "causal_and_padding"])
@pytest.mark.parametrize("name", list(ENCODER_LAYERS))
def test_encoder_layer_matches_torch(name, masks):
    options = ENCODER_LAYERS[name]
    ours, theirs = _pair(lambda m: m.TransformerEncoderLayer(8, 2, 16, dropout=0.0, **options))
    batch_first = options.get("batch_first", False)
    kwargs = {} if masks == "none" else {"src_mask": CAUSAL, "src_key_padding_mask": PADDING}
    torch = _torch()
    x = np.random.default_rng(1).standard_normal((3, 5, 8) if batch_first else (5, 3, 8))
    _compare(ours, theirs, [x], kwargs, {k: torch.tensor(v) for k, v in kwargs.items()})


@pytest.mark.parametrize("norm", [False, True])
def test_encoder_stack_matches_torch(norm):
    torch = _torch()

    def make(m):
        return m.TransformerEncoder(
            m.TransformerEncoderLayer(8, 2, 16, dropout=0.0),
            2,
            norm=m.LayerNorm(8) if norm else None,
            enable_nested_tensor=False,
        )

    ours, theirs = _pair(make)
    x = np.random.default_rng(2).standard_normal((5, 3, 8))
    kwargs = {"mask": CAUSAL, "src_key_padding_mask": PADDING}
    _compare(ours, theirs, [x], kwargs, {k: torch.tensor(v) for k, v in kwargs.items()})


@pytest.mark.parametrize(
    "options", [dict(), dict(norm_first=True, batch_first=True)], ids=["post_norm", "pre_norm_batch_first"]
)
def test_decoder_layer_matches_torch(options):
    torch = _torch()
    ours, theirs = _pair(lambda m: m.TransformerDecoderLayer(8, 2, 16, dropout=0.0, **options))
    rng = np.random.default_rng(3)
    shape = (lambda n: (3, n, 8)) if options.get("batch_first") else (lambda n: (n, 3, 8))
    tgt, memory = rng.standard_normal(shape(4)), rng.standard_normal(shape(5))
    kwargs = {"tgt_mask": CAUSAL[:4, :4], "memory_key_padding_mask": PADDING}
    _compare(ours, theirs, [tgt, memory], kwargs, {k: torch.tensor(v) for k, v in kwargs.items()})


def test_transformer_matches_torch():
    torch = _torch()
    ours, theirs = _pair(lambda m: m.Transformer(8, 2, 2, 2, 16, dropout=0.0))
    rng = np.random.default_rng(4)
    src, tgt = rng.standard_normal((5, 3, 8)), rng.standard_normal((4, 3, 8))
    kwargs = {"tgt_mask": CAUSAL[:4, :4], "src_key_padding_mask": PADDING, "memory_key_padding_mask": PADDING}
    _compare(ours, theirs, [src, tgt], kwargs, {k: torch.tensor(v) for k, v in kwargs.items()})


# ---------------------------------------------------------------------- word_language_model
def language_models(nn, F, as_tensor):
    """pytorch/examples word_language_model/model.py's three classes, written against `nn` and
    `F` (torch's or Kinone's); only the positional table is built with NumPy and `as_tensor`."""

    class RNNModel(nn.Module):
        def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.5, tie_weights=False):
            super().__init__()
            self.ntoken = ntoken
            self.drop = nn.Dropout(dropout)
            self.encoder = nn.Embedding(ntoken, ninp)
            if rnn_type in ["LSTM", "GRU"]:
                self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
            else:
                nonlinearity = {"RNN_TANH": "tanh", "RNN_RELU": "relu"}[rnn_type]
                self.rnn = nn.RNN(ninp, nhid, nlayers, nonlinearity=nonlinearity, dropout=dropout)
            self.decoder = nn.Linear(nhid, ntoken)
            if tie_weights:
                self.decoder.weight = self.encoder.weight
            self.init_weights()
            self.rnn_type, self.nhid, self.nlayers = rnn_type, nhid, nlayers

        def init_weights(self):
            nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
            nn.init.zeros_(self.decoder.bias)
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

        def forward(self, input, hidden):
            emb = self.drop(self.encoder(input))
            output, hidden = self.rnn(emb, hidden)
            output = self.drop(output)
            decoded = self.decoder(output)
            decoded = decoded.view(-1, self.ntoken)
            return F.log_softmax(decoded, dim=1), hidden

    class PositionalEncoding(nn.Module):
        def __init__(self, d_model, dropout=0.1, max_len=5000):
            super().__init__()
            self.dropout = nn.Dropout(p=dropout)
            position = np.arange(max_len, dtype=np.float32)[:, None]
            div_term = np.exp(np.arange(0, d_model, 2).astype(np.float32) * (-math.log(10000.0) / d_model))
            pe = np.zeros((max_len, d_model), np.float32)
            pe[:, 0::2], pe[:, 1::2] = np.sin(position * div_term), np.cos(position * div_term)
            self.register_buffer("pe", as_tensor(pe[:, None, :]))

        def forward(self, x):
            x = x + self.pe[: x.shape[0], :]
            return self.dropout(x)

    class TransformerModel(nn.Transformer):
        def __init__(self, ntoken, ninp, nhead, nhid, nlayers, dropout=0.5):
            super().__init__(d_model=ninp, nhead=nhead, dim_feedforward=nhid, num_encoder_layers=nlayers)
            self.model_type = "Transformer"
            self.src_mask = None
            self.pos_encoder = PositionalEncoding(ninp, dropout)
            self.input_emb = nn.Embedding(ntoken, ninp)
            self.ninp = ninp
            self.decoder = nn.Linear(ninp, ntoken)
            self.init_weights()

        def init_weights(self):
            nn.init.uniform_(self.input_emb.weight, -0.1, 0.1)
            nn.init.zeros_(self.decoder.bias)
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

        def forward(self, src, has_mask=True):
            if has_mask:
                if self.src_mask is None or self.src_mask.shape[0] != len(src):
                    self.src_mask = nn.Transformer.generate_square_subsequent_mask(len(src))
            else:
                self.src_mask = None
            src = self.input_emb(src) * math.sqrt(self.ninp)
            src = self.pos_encoder(src)
            output = self.encoder(src, mask=self.src_mask)
            output = self.decoder(output)
            return F.log_softmax(output, dim=-1)

    return RNNModel, TransformerModel


def _language_model_pair(kind: str):
    torch = _torch()
    built = []
    for m, functional, as_tensor in ((torch.nn, torch.nn.functional, torch.tensor), (nn, F, Tensor)):
        models = language_models(m, functional, as_tensor)
        if kind == "Transformer":
            built.append(models[1](ntoken=20, ninp=8, nhead=2, nhid=16, nlayers=2, dropout=0.0))
        else:
            built.append(models[0](kind, ntoken=20, ninp=8, nhid=8, nlayers=2, dropout=0.0, tie_weights=kind == "LSTM"))
    theirs, ours = built
    # Sorted: re-assigning a parameter (the tied decoder.weight) moves its key to the end in
    # Kinone's Module.__setattr__, where PyTorch keeps its place.
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN_TANH", "RNN_RELU", "Transformer"])
def test_word_language_model_runs_as_in_pytorch(kind):
    """Two training steps (plain SGD, lr 0.5, as the example's loop) give the same losses and
    the same parameters in both frameworks, float32."""
    torch = _torch()
    ours, theirs = _language_model_pair(kind)
    if kind == "Transformer":
        ours.eval(), theirs.eval()  # its layers keep nn.Transformer's default dropout 0.1
    rng = np.random.default_rng(5)
    data, targets = rng.integers(0, 20, (6, 3)), rng.integers(0, 20, 18)
    hidden = np.zeros((2, 3, 8), np.float32)
    for _ in range(2):
        if kind == "Transformer":
            out_theirs, out_ours = theirs(torch.tensor(data)), ours(Tensor(data))
            out_theirs, out_ours = out_theirs.view(-1, 20), out_ours.reshape(-1, 20)
        else:
            state = (hidden, hidden) if kind == "LSTM" else hidden
            wrap = (lambda f: tuple(f(s) for s in state)) if kind == "LSTM" else (lambda f: f(state))
            out_theirs, _ = theirs(torch.tensor(data), wrap(torch.tensor))
            out_ours, _ = ours(Tensor(data), wrap(Tensor))
        loss_theirs = torch.nn.functional.nll_loss(out_theirs, torch.tensor(targets))
        loss_ours = F.nll_loss(out_ours, Tensor(targets))
        np.testing.assert_allclose(loss_ours.item(), loss_theirs.item(), rtol=1e-5)
        theirs.zero_grad(), ours.zero_grad()
        loss_theirs.backward(), loss_ours.backward()
        with torch.no_grad():
            for p in theirs.parameters():
                p.add_(p.grad, alpha=-0.5)
        for p in ours.parameters():
            p.data -= 0.5 * p.grad.data
    named = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.data, named[name].detach().numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


# ---------------------------------------------------------------------- ONNX
class _LSTMTagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 6, num_layers=2, batch_first=True)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        return self.head(self.lstm(x)[0])


@pytest.mark.parametrize(
    "make, shape",
    [
        (_LSTMTagger, (2, 5, 4)),
        (lambda: nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), (2, 5, 8)),
        (lambda: nn.TransformerEncoderLayer(8, 2, 16, batch_first=True, norm_first=True, activation="gelu"), (2, 5, 8)),
    ],
    ids=["lstm", "encoder_layer", "encoder_layer_pre_norm_gelu"],
)
def test_exports_to_onnx_and_matches_onnxruntime(make, shape, tmp_path):
    kinone_onnx = pytest.importorskip("kinone.onnx")
    pytest.importorskip("onnxruntime")
    model = make().eval()
    x = np.random.default_rng(6).standard_normal(shape).astype(np.float32)
    kinone_onnx.export(model, Tensor(x), tmp_path / "model.onnx")
    report = kinone_onnx.verify(model, tmp_path / "model.onnx", x)  # also at another batch size
    assert report.max_abs_diff < 1e-4
