"""torch.save / torch.load of whole Modules without pickle: a structured tree of classes named
as text, plain attributes, submodules, parameters and buffers; rebuilt only from Kinone's
own classes and the ones allowed with torch.serialization.safe_globals."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

import kinone.torch as torch
import kinone.torch.nn as nn
import kinone.torch.nn.functional as F
from kinone.nn.serialization import load_bytes_with_metadata, save_bytes


class WordModel(nn.Module):
    """An embedding, a recurrent stack and a projection to the vocabulary (word-model style)."""

    def __init__(self, cell, vocab, width, layers, dropout=0.2, tie=False):
        super().__init__()
        self.vocab = vocab
        self.drop = nn.Dropout(dropout)
        self.embed = nn.Embedding(vocab, width)
        if cell == "RNN_TANH":
            self.recurrent = nn.RNN(width, width, layers, nonlinearity="tanh", dropout=dropout)
        else:
            self.recurrent = getattr(nn, cell)(width, width, layers, dropout=dropout)
        self.project = nn.Linear(width, vocab)
        if tie:
            self.project.weight = self.embed.weight
        self.cell, self.width, self.layers = cell, width, layers

    def forward(self, tokens, state):
        out, state = self.recurrent(self.drop(self.embed(tokens)), state)
        return F.log_softmax(self.project(self.drop(out)).view(-1, self.vocab), dim=1), state

    def initial_state(self, batch):
        zeros = torch.zeros(self.layers, batch, self.width)
        return (zeros, torch.zeros(self.layers, batch, self.width)) if self.cell == "LSTM" else zeros


class SinusoidalPositions(nn.Module):
    def __init__(self, width, dropout=0.1, longest=64):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = np.arange(longest, dtype=np.float32)[:, None]
        rate = np.exp(np.arange(0, width, 2, dtype=np.float32) * (-math.log(10000.0) / width))
        table = np.zeros((longest, 1, width), np.float32)
        table[:, 0, 0::2], table[:, 0, 1::2] = np.sin(position * rate), np.cos(position * rate)
        self.register_buffer("table", torch.tensor(table))

    def forward(self, x):
        return self.dropout(x + self.table[: x.size(0)])


class AttentionWordModel(nn.Transformer):
    """A causal Transformer encoder over embedded words (word-model style): keeps its mask as a
    plain Tensor attribute, as the example does."""

    def __init__(self, vocab, width, heads, hidden, layers, dropout=0.2):
        super().__init__(d_model=width, nhead=heads, dim_feedforward=hidden, num_encoder_layers=layers)
        self.kind = "Transformer"
        self.mask = None
        self.positions = SinusoidalPositions(width, dropout)
        self.embed = nn.Embedding(vocab, width)
        self.width = width
        self.project = nn.Linear(width, vocab)

    def forward(self, tokens):
        if self.mask is None or self.mask.size(0) != len(tokens):
            with np.errstate(divide="ignore"):  # log(0) = -inf above the diagonal, as the example's mask
                self.mask = torch.log(torch.tril(torch.ones(len(tokens), len(tokens))))
        x = self.positions(self.embed(tokens) * math.sqrt(self.width))
        return F.log_softmax(self.project(self.encoder(x, mask=self.mask)), dim=-1)


def tokens(seq=5, batch=3, vocab=11, seed=0):
    return torch.tensor(np.random.default_rng(seed).integers(0, vocab, (seq, batch)))


def round_trip(model, allowed, via="path", tmp_path=None):
    if via == "path":
        torch.save(model, tmp_path / "model.pt")
        with torch.serialization.safe_globals(allowed):
            return torch.load(tmp_path / "model.pt")
    if via == "open file":
        with open(tmp_path / "model.pt", "wb") as f:
            torch.save(model, f)
        with open(tmp_path / "model.pt", "rb") as f, torch.serialization.safe_globals(allowed):
            return torch.load(f)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    with torch.serialization.safe_globals(allowed):
        return torch.load(buffer)


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN_TANH"])
@pytest.mark.parametrize("via", ["path", "open file", "BytesIO"])
def test_a_recurrent_word_model_gives_the_same_outputs_after_a_round_trip(cell, via, tmp_path):
    torch.manual_seed(0)
    model = WordModel(cell, vocab=11, width=6, layers=2, tie=True).eval()
    x = tokens()
    expected, expected_state = model(x, model.initial_state(3))
    loaded = round_trip(model, [WordModel], via, tmp_path)
    assert type(loaded) is WordModel and type(loaded.recurrent) is type(model.recurrent)
    assert not loaded.training and (loaded.cell, loaded.width, loaded.layers) == (cell, 6, 2)
    assert loaded.project.weight is loaded.embed.weight  # tied weights stay tied
    assert list(loaded.state_dict()) == list(model.state_dict())
    got, got_state = loaded(x, loaded.initial_state(3))
    np.testing.assert_array_equal(got.data, expected.data)
    if cell != "LSTM":
        got_state, expected_state = (got_state,), (expected_state,)
    for a, b in zip(got_state, expected_state, strict=True):
        np.testing.assert_array_equal(a.data, b.data)


def test_a_loaded_model_trains_on_parameters_that_are_parameters(tmp_path):
    torch.manual_seed(1)
    model = WordModel("LSTM", vocab=11, width=6, layers=1, dropout=0.0)
    model.embed.weight.requires_grad_(False)
    loaded = round_trip(model, [WordModel], "path", tmp_path)
    assert loaded.training
    assert all(isinstance(p, nn.Parameter) for p in loaded.parameters())
    assert not loaded.embed.weight.requires_grad and loaded.project.weight.requires_grad
    output, _ = loaded(tokens(), loaded.initial_state(3))
    output.sum().backward()
    assert loaded.project.weight.grad is not None and loaded.embed.weight.grad is None


def test_a_transformer_word_model_gives_the_same_outputs_after_a_round_trip(tmp_path):
    torch.manual_seed(2)
    model = AttentionWordModel(vocab=11, width=8, heads=2, hidden=16, layers=2).eval()
    x = tokens(seq=6)
    expected = model(x)  # sets model.mask, a plain Tensor attribute
    allowed = [
        AttentionWordModel,
        SinusoidalPositions,
        F.relu,
        nn.modules.activation.MultiheadAttention,
        nn.modules.container.ModuleList,
        nn.modules.dropout.Dropout,
        nn.modules.linear.Linear,
        nn.modules.linear.NonDynamicallyQuantizableLinear,
        nn.modules.normalization.LayerNorm,
        nn.modules.sparse.Embedding,
        nn.modules.transformer.TransformerEncoder,
        nn.modules.transformer.TransformerEncoderLayer,
    ]
    loaded = round_trip(model, allowed, "open file", tmp_path)
    assert loaded.encoder.layers[0].activation is F.relu and loaded.kind == "Transformer"
    np.testing.assert_array_equal(loaded.mask.data, model.mask.data)
    np.testing.assert_array_equal(loaded.positions.table.data, model.positions.table.data)
    np.testing.assert_array_equal(loaded(x).data, expected.data)


def test_a_sequential_of_kinone_layers_needs_no_allowlist(tmp_path):
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 2))
    model(torch.randn(5, 4))  # moves the running statistics
    model.eval()
    x = torch.randn(3, 4)
    torch.save({"model": model, "epoch": 4}, tmp_path / "checkpoint.pt")
    loaded = torch.load(tmp_path / "checkpoint.pt")
    assert loaded["epoch"] == 4 and type(loaded["model"]) is nn.Sequential
    np.testing.assert_array_equal(loaded["model"](x).data, model(x).data)
    np.testing.assert_array_equal(loaded["model"][1].running_mean.data, model[1].running_mean.data)


class CountsInits(nn.Module):
    inits = 0

    def __init__(self):
        super().__init__()
        CountsInits.inits += 1
        self.layer = nn.Linear(2, 2)
        self.register_buffer("scratch", torch.zeros(2), persistent=False)
        self.settings = {"scale": 2.0, "names": ("a", "b"), 3: [None, True]}


def test_load_calls_no_init_and_restores_attributes_and_non_persistent_buffers(tmp_path):
    model = CountsInits()
    before = CountsInits.inits
    loaded = round_trip(model, [CountsInits], "BytesIO")
    assert CountsInits.inits == before
    assert loaded.settings == {"scale": 2.0, "names": ("a", "b"), 3: [None, True]}
    assert "scratch" not in loaded.state_dict() and loaded.scratch.shape == (2,)


def test_a_class_not_allowed_is_refused_in_one_line_naming_it(tmp_path):
    torch.save(WordModel("GRU", 5, 4, 1, dropout=0.0), tmp_path / "model.pt")
    with pytest.raises(ValueError) as error:
        torch.load(tmp_path / "model.pt")
    message = str(error.value)
    assert "\n" not in message and f"'{__name__}:WordModel'" in message
    assert "safe_globals([WordModel])" in message and "add_safe_globals([WordModel])" in message
    with torch.serialization.safe_globals([WordModel]):
        torch.load(tmp_path / "model.pt")
    with pytest.raises(ValueError, match="WordModel"):  # the allowlist ends with the block
        torch.load(tmp_path / "model.pt")
    torch.serialization.add_safe_globals([WordModel])
    try:
        assert type(torch.load(tmp_path / "model.pt")) is WordModel
    finally:
        torch.serialization.clear_safe_globals()


def edited_file(model, edit) -> io.BytesIO:
    """The file torch.save writes for `model`, with its JSON tree changed by `edit(tree)`."""
    buffer = io.BytesIO()
    torch.save(model, buffer)
    arrays, metadata = load_bytes_with_metadata(buffer.getvalue())
    edit(metadata["object"])
    return io.BytesIO(save_bytes(arrays, metadata=json.loads(json.dumps(metadata))))


def test_a_file_cannot_name_a_module_to_import_or_a_function_to_call():
    def as_popen(tree):
        tree["__module__"] = "subprocess:Popen"

    def with_system(tree):
        tree["attributes"].append(["hook", {"__function__": "os:system"}])

    def with_registry(tree):
        tree["attributes"].append(["_modules", {"__dict__": []}])

    with pytest.raises(ValueError, match=r"a class of 'subprocess:Popen', which is not allowed"):
        torch.load(edited_file(nn.Linear(2, 2), as_popen))
    with pytest.raises(ValueError, match=r"obj.hook is a function of 'os:system', which is not allowed"):
        torch.load(edited_file(nn.Linear(2, 2), with_system))
    with pytest.raises(ValueError, match="'_modules' is not an attribute name a file may set"):
        torch.load(edited_file(nn.Linear(2, 2), with_registry))
    with torch.serialization.safe_globals([io.BytesIO]):
        with pytest.raises(ValueError, match="'_io:BytesIO' is not a Module class"):
            torch.load(edited_file(nn.Linear(2, 2), lambda tree: tree.update({"__module__": "_io:BytesIO"})))


def test_save_refuses_what_a_file_cannot_hold_naming_its_path(tmp_path):
    model = nn.Sequential(nn.Linear(2, 2))
    model[0].scale = lambda x: 2 * x
    with pytest.raises(TypeError, match=r"obj\.0\.scale is the function .*<lambda>, which has no pickle-free form"):
        torch.save(model, tmp_path / "m.pt")
    model[0].scale = object()
    with pytest.raises(TypeError, match=r"obj\.0\.scale is a object, which has no pickle-free form"):
        torch.save(model, tmp_path / "m.pt")
    del model[0].scale
    model.register_forward_hook(lambda module, inputs, output: None)
    with pytest.raises(TypeError, match=r"obj\._forward_hooks is set \(hooks are functions"):
        torch.save(model, tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_the_pytorch_module_paths_are_kinone_classes():
    import kinone.torch.nn.modules.rnn as rnn

    assert rnn.LSTM is nn.LSTM and nn.modules.sparse.Embedding is nn.Embedding
    assert nn.modules.linear.NonDynamicallyQuantizableLinear is type(nn.MultiheadAttention(4, 2).out_proj)
    assert nn.modules.transformer.TransformerEncoderLayer is nn.TransformerEncoderLayer
    for name in nn.modules.__all__:
        for cls_name in getattr(nn.modules, name).__all__:
            cls = getattr(getattr(nn.modules, name), cls_name)
            assert issubclass(cls, nn.Module) and cls.__module__.startswith("kinone.nn.")
