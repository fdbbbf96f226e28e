"""Module: registration, traversal, modes, hooks, state dicts, repr."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

from kinone import nn
from kinone.autograd import Tensor, randn, tensor


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.register_buffer("scale", Tensor(np.ones(4, dtype=np.float32)))
        self.register_buffer("cache", Tensor(np.zeros(2, dtype=np.float32)), persistent=False)

    def forward(self, x):
        return self.fc(x) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(np.zeros((2, 2), dtype=np.float32))
        self.block = Block()
        self.layers = nn.ModuleList([nn.Linear(4, 4), nn.ReLU()])
        self.head = nn.Sequential(OrderedDict(proj=nn.Linear(4, 2)))

    def forward(self, x):
        x = self.block(x)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


def test_registration_order_gives_pytorch_dotted_keys():
    keys = list(Net().state_dict())
    assert keys == [
        "w",
        "block.scale",  # a module's own parameters and buffers come before its children's
        "block.fc.weight",
        "block.fc.bias",
        "layers.0.weight",
        "layers.0.bias",
        "head.proj.weight",
        "head.proj.bias",
    ]


def test_parameters_buffers_children_and_modules():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == [
        "w",
        "block.fc.weight",
        "block.fc.bias",
        "layers.0.weight",
        "layers.0.bias",
        "head.proj.weight",
        "head.proj.bias",
    ]
    assert len(list(net.parameters())) == 7
    assert [n for n, _ in net.named_buffers()] == ["block.scale", "block.cache"]
    assert [n for n, _ in net.named_children()] == ["block", "layers", "head"]
    assert [n for n, _ in net.named_modules()] == [
        "",
        "block",
        "block.fc",
        "layers",
        "layers.0",
        "layers.1",
        "head",
        "head.proj",
    ]
    assert net.num_parameters() == 4 + 16 + 20 + 10
    assert all(p.requires_grad for p in net.parameters())


def test_shared_parameters_are_listed_once():
    a = nn.Linear(2, 2)
    seq = nn.Sequential(a, a)
    assert len(list(seq.parameters())) == 2 and seq.num_parameters() == 6


def test_reassignment_and_deletion_keep_registries_consistent():
    net = Net()
    net.block = nn.Identity()
    assert "block.fc.weight" not in net.state_dict()
    net.w = None
    assert "w" not in net.state_dict()
    with pytest.raises(TypeError, match="is a parameter: assign a Parameter or None"):
        net.w = np.zeros(2)
    del net.head
    assert not hasattr(net, "head")
    with pytest.raises(AttributeError, match="'Net' object has no attribute 'nothing'"):
        net.nothing


def test_train_eval_propagate():
    net = Net()
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_forward_and_zero_grad():
    net = Net()
    out = net(randn(5, 3))
    assert out.shape == (5, 2)
    out.sum().backward()
    assert net.block.fc.weight.grad is not None
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_apply_visits_children_first_then_self():
    seen = []
    Net().apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen.index("Linear") < seen.index("Block")


def test_forward_hooks_and_pre_hooks():
    layer = nn.Linear(2, 2)
    calls = []
    h1 = layer.register_forward_pre_hook(lambda m, inputs: calls.append(("pre", inputs[0].shape)))
    h2 = layer.register_forward_hook(lambda m, inputs, out: out * 0)
    out = layer(randn(3, 2))
    assert calls == [("pre", (3, 2))] and np.all(out.data == 0)
    h1.remove()
    h2.remove()
    assert np.any(layer(randn(3, 2)).data != 0) and len(calls) == 1


def test_state_dict_round_trip_and_strict_errors():
    a, b = Net(), Net()
    b.load_state_dict(a.state_dict())
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and np.array_equal(va, vb)
    sd = a.state_dict()
    del sd["w"]
    sd["extra.weight"] = np.zeros(1)
    with pytest.raises(RuntimeError) as error:
        b.load_state_dict(sd)
    assert 'Missing key(s) in state_dict: "w"' in str(error.value)
    assert 'Unexpected key(s) in state_dict: "extra.weight"' in str(error.value)
    result = b.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["w"] and result.unexpected_keys == ["extra.weight"]


def test_shape_mismatch_names_the_key_and_both_shapes_and_writes_nothing():
    net = Net()
    before = net.block.fc.bias.data.copy()
    sd = OrderedDict((k, np.ones_like(v)) for k, v in net.state_dict().items())
    sd["head.proj.weight"] = np.zeros((3, 4))
    with pytest.raises(
        RuntimeError,
        match=r"size mismatch for head.proj.weight: copying a param with shape \(3, 4\), "
        r"the shape in the current model is \(2, 4\)",
    ):
        net.load_state_dict(sd)
    assert np.array_equal(net.block.fc.bias.data, before)


def test_load_state_dict_copies_in_place_and_accepts_tensors():
    net = nn.Linear(2, 3)
    weight_array = net.weight.data
    net.load_state_dict({"weight": Tensor(np.ones((3, 2))), "bias": [1.0, 2.0, 3.0]})
    assert net.weight.data is weight_array and net.weight.dtype == np.float32
    assert net.bias.data.tolist() == [1, 2, 3]


def test_batchnorm_state_dict_has_num_batches_tracked():
    bn = nn.BatchNorm2d(3)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert bn.state_dict()["num_batches_tracked"].dtype == np.int64


def test_repr_is_readable():
    text = repr(Net())
    assert "(block): Block(\n    (fc): Linear(in_features=3, out_features=4, bias=True)\n  )" in text
    assert (
        "(layers): ModuleList(\n    (0): Linear(in_features=4, out_features=4, bias=True)\n    (1): ReLU()\n  )" in text
    )
    assert (
        repr(nn.Conv2d(3, 8, 3, padding=1, bias=False))
        == "Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)"
    )


def test_containers():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert isinstance(seq[0], nn.Linear) and isinstance(seq[-1], nn.Linear) and len(seq) == 3
    assert isinstance(seq[1:], nn.Sequential) and len(seq[1:]) == 2
    with pytest.raises(IndexError, match="index 3 is out of range for 3 modules"):
        seq[3]
    ml = nn.ModuleList([nn.ReLU()])
    ml.append(nn.Tanh())
    ml.insert(0, nn.Sigmoid())
    assert [type(m).__name__ for m in ml] == ["Sigmoid", "ReLU", "Tanh"]
    md = nn.ModuleDict({"a": nn.Linear(1, 1)})
    md["b"] = nn.ReLU()
    assert list(md.keys()) == ["a", "b"] and "a" in md and len(md) == 2
    assert list(md.state_dict()) == ["a.weight", "a.bias"]


def test_module_to_float64_for_gradcheck():
    net = nn.Linear(2, 2).to(np.float64)
    assert net.weight.dtype == np.float64
    assert net(tensor(np.ones((1, 2)))).dtype == np.float64


def test_default_initialisation_bounds_match_pytorch():
    layer = nn.Linear(100, 50)
    bound = 1 / np.sqrt(100)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.weight.data).max() > 0.9 * bound
    assert np.abs(layer.bias.data).max() <= bound
    conv = nn.Conv2d(4, 8, 3)
    conv_bound = 1 / np.sqrt(4 * 9)
    assert np.abs(conv.weight.data).max() <= conv_bound and conv.weight.shape == (8, 4, 3, 3)


def test_assigning_before_init_is_a_clear_error():
    class Bad(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match=r"before Module.__init__\(\) is called"):
        Bad()


def test_reassigning_a_parameter_or_submodule_keeps_its_place_in_the_state_dict():
    """Weight tying as pytorch/examples does it (`decoder.weight = encoder.weight`): PyTorch
    keeps the key where it was; Kinone moved it to the end."""
    decoder, encoder = nn.Linear(4, 3), nn.Linear(4, 3)
    decoder.weight = encoder.weight
    assert list(decoder.state_dict()) == ["weight", "bias"] and decoder.weight is encoder.weight
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    model[0] = nn.Linear(2, 2)
    assert list(model.state_dict()) == ["0.weight", "0.bias"]
    holder = nn.Module()
    holder.a, holder.b = nn.Linear(1, 1), nn.Linear(1, 1)
    holder.a = nn.Linear(1, 1)
    assert list(holder.state_dict())[:2] == ["a.weight", "a.bias"]
