"""kinone.nn.graph: a model's traced forward as DOT, one node per module call or every Function."""

from __future__ import annotations

import numpy as np
import pytest

from kinone import models, nn
from kinone.autograd import default_generator, tensor
from kinone.autograd.graph import parse_dot
from kinone.nn.module_graph import build_graph


def _tiny():
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1),
        nn.BatchNorm2d(2),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Flatten(),
        nn.Linear(2 * 4 * 4, 3),
    )


X = np.ones((2, 1, 4, 4), np.float32)


def test_expanded_every_function_and_parameter_named_and_clustered():
    model = _tiny()
    graph = build_graph(model, X, expand=True)
    functions = [n.title for n in graph.nodes if n.kind == "function"]
    assert functions == ["Conv2d", "BatchNormEval", "ReLU", "Reshape", "Linear"]  # eval mode: no dropout
    leaves = [n.title for n in graph.nodes if n.kind == "leaf"]
    assert leaves == ["0.weight", "0.bias", "1.weight", "1.bias", "5.weight", "5.bias"]
    constants = [n.title for n in graph.nodes if n.kind == "constant"]
    assert constants == ["input", "1.running_mean", "1.running_var"]
    conv = next(n for n in graph.nodes if n.title == "Conv2d")
    assert (conv.shape, conv.dtype, conv.cluster) == ((2, 2, 4, 4), "float32", "0")
    assert conv.function == "kinone.nn.functional.conv.Conv2d"
    assert next(n for n in graph.nodes if n.title == "0.weight").cluster == "0"
    position = {n.id: i for i, n in enumerate(graph.nodes)}
    assert all(position[a] < position[b] for a, b in graph.edges)  # data-flow order
    conv_inputs = [graph.node(a).title for a, b in graph.edges if b == conv.id]
    assert conv_inputs == ["input", "0.weight", "0.bias"]
    assert parse_dot(graph.to_dot()) == graph


def test_collapsed_one_node_per_module_with_its_parameters_folded_in():
    graph = build_graph(_tiny(), X)
    assert [(n.kind, n.title) for n in graph.nodes] == [
        ("constant", "input"),
        ("module", "0"),
        ("module", "1"),
        ("module", "2"),
        ("module", "4"),
        ("module", "5"),
    ]
    assert [n.parameters for n in graph.nodes[1:3]] == [("0.weight", "0.bias"), ("1.weight", "1.bias")]
    assert graph.nodes[1].detail == "Conv2d · 1 op"
    assert graph.nodes[-1].shape == (2, 3)
    assert graph.edges == [("n0", "g0"), ("g0", "g1"), ("g1", "g2"), ("g2", "g3"), ("g3", "g4")]


def test_drawing_changes_nothing_about_the_model():
    model = _tiny().train()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    rng = default_generator().bit_generator.state
    nn.graph(model, X)
    assert model.training and all(m.training for m in model.modules())
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    assert default_generator().bit_generator.state == rng


def test_resnet18_collapsed_stays_small_and_expands_on_request():
    model = models.resnet18(num_classes=14, in_channels=1)
    x = np.zeros((1, 1, 32, 32), np.float32)
    collapsed = build_graph(model, x)
    names = [n.title for n in collapsed.nodes]
    assert len(collapsed.nodes) == 16
    assert names[:5] == ["input", "conv1", "bn1", "relu", "maxpool"]
    assert [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)] == names[5:13]
    block = collapsed.nodes[7]
    assert block.detail == "BasicBlock · 9 ops" and "layer2.0.downsample.0.weight" in block.parameters
    expanded = build_graph(model, x, expand=True)
    assert sum(n.kind == "function" for n in expanded.nodes) > 60
    assert sum(n.kind == "leaf" for n in expanded.nodes) == len(list(model.parameters()))
    assert {n.cluster for n in expanded.nodes if n.title == "Conv2d"} >= {"conv1", "layer1.0", "layer4.1"}
    assert parse_dot(nn.graph(model, x)) == collapsed


def test_depth_chooses_the_boxes_and_a_module_called_twice_gets_two():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Sequential(nn.Linear(3, 3), nn.ReLU())

        def forward(self, x):
            return self.block(self.block(x))

    graph = build_graph(Twice(), tensor(np.ones((1, 3), np.float32)), depth=1)
    assert [n.title for n in graph.nodes if n.kind == "module"] == ["block (call 1)", "block (call 2)"]
    deeper = build_graph(Twice(), np.ones((1, 3), np.float32))
    assert [n.title for n in deeper.nodes if n.kind == "module"] == [
        "block.0 (call 1)",
        "block.1 (call 1)",
        "block.0 (call 2)",
        "block.1 (call 2)",
    ]
    with pytest.raises(ValueError, match="depth must be at least 1"):
        build_graph(Twice(), np.ones((1, 3), np.float32), depth=0)
