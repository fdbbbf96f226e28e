"""kinone.autograd.graph: the recorded graph as DOT text, and that text read back."""

from __future__ import annotations

import numpy as np
import pytest

from kinone.autograd import Tensor, tensor
from kinone.autograd.graph import build_graph, parse_dot, quote, to_dot


def _tiny():
    """(w, b, y): y = sum(relu(x @ w + b)), x not requiring grad."""
    x = tensor(np.ones((2, 3), np.float32))
    w = tensor(np.ones((3, 4), np.float32), requires_grad=True)
    b = tensor(np.zeros(4, np.float32), requires_grad=True)
    return w, b, ((x @ w) + b).relu().sum()


def test_one_node_per_function_and_leaf_in_data_flow_order():
    w, b, y = _tiny()
    graph = build_graph(y, names={w: "w", b: "b"})
    titles = [(n.kind, n.title) for n in graph.nodes]
    assert titles == [
        ("constant", "no grad"),
        ("leaf", "w"),
        ("function", "MatMul"),
        ("leaf", "b"),
        ("function", "Add"),
        ("function", "ReLU"),
        ("function", "Sum"),
    ]
    shapes = [n.shape for n in graph.nodes]
    assert shapes == [(2, 3), (3, 4), (2, 4), (4,), (2, 4), (2, 4), ()]
    assert {n.dtype for n in graph.nodes} == {"float32"}
    ids = {n.title: n.id for n in graph.nodes}
    # every edge goes from an earlier node to a later one, a node's inputs in their order
    assert graph.edges == [
        ("n0", ids["MatMul"]),
        (ids["w"], ids["MatMul"]),
        (ids["MatMul"], ids["Add"]),
        (ids["b"], ids["Add"]),
        (ids["Add"], ids["ReLU"]),
        (ids["ReLU"], ids["Sum"]),
    ]
    assert graph.node(ids["MatMul"]).function == "kinone.autograd.ops.matmul.MatMul"


def test_names_may_be_given_either_way_round_and_unnamed_leaves_say_leaf():
    w, _b, y = _tiny()
    by_name = build_graph(y, names={"weight": w})
    assert [n.title for n in by_name.nodes if n.kind == "leaf"] == ["weight", "leaf"]
    with pytest.raises(TypeError, match="names must map tensors"):
        build_graph(y, names={"weight": 3})


def test_a_shared_input_is_one_node_with_an_edge_per_use():
    w = tensor([1.0, 2.0], requires_grad=True)
    graph = build_graph((w * w).sum(), names={w: "w"})
    assert [n.title for n in graph.nodes] == ["w", "Mul", "Sum"]
    assert graph.edges == [("n0", "n1"), ("n0", "n1"), ("n1", "n2")]


def test_constants_can_be_left_out():
    _w, _b, y = _tiny()
    graph = build_graph(y, constants=False)
    assert all(n.kind != "constant" for n in graph.nodes)
    assert len(graph.edges) == 5


def test_a_leaf_alone_and_a_freed_graph():
    w = tensor([1.0], requires_grad=True)
    assert [n.kind for n in build_graph(w).nodes] == ["leaf"]
    y = (w * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="freed by backward.*retain_graph=True"):
        to_dot(y)


def test_a_long_chain_needs_no_recursion():
    w = tensor([1.0], requires_grad=True)
    y = w
    for _ in range(20_000):
        y = y + 1.0
    graph = build_graph(y)
    assert len(graph.nodes) == 20_001 + 20_000  # the leaf, the adds, a constant per add


def test_dot_text_parses_back_to_the_same_graph():
    w, b, y = _tiny()
    graph = build_graph(y, names={w: "w", b: 'b "bias"\\'})
    text = graph.to_dot()
    assert text.startswith("digraph kinone {") and text.endswith("}\n")
    assert 'label="MatMul\\n(2, 4) float32"' in text
    assert parse_dot(text) == graph


def test_clusters_and_module_nodes_round_trip():
    w, _b, y = _tiny()
    graph = build_graph(y, names={w: "w"})
    graph.nodes[1].cluster = graph.nodes[2].cluster = "layer1.0"
    graph.nodes[4].kind, graph.nodes[4].parameters, graph.nodes[4].detail = (
        "module",
        ("a.weight", "a.bias"),
        "Block · 3 ops",
    )
    text = graph.to_dot()
    assert "subgraph cluster_0" in text
    assert parse_dot(text) == graph


@pytest.mark.parametrize(
    "text, message",
    [
        ("graph g { }", "expected a digraph"),
        ('digraph g { n0 [label="a"]; n0 -> n1; }', "undeclared node n1"),
        ('digraph g { n0 [label="a"] }', "expected ';'"),
        ('digraph g { n0 [label="a"]; } x', "after the graph"),
        ('digraph g { n0 [kinone_kind="other"]; }', "unknown kinone_kind"),
        ("digraph g { n0 @ }", "unexpected character '@' on line 1"),
        ("digraph g {", "ended"),
    ],
)
def test_text_outside_the_written_subset_is_refused(text, message):
    with pytest.raises(ValueError, match=message):
        parse_dot(text)


def test_quote_escapes_what_dot_needs():
    assert quote('a "b"\\\nc') == '"a \\"b\\"\\\\\\nc"'


def test_to_dot_wants_a_tensor():
    with pytest.raises(TypeError, match="expected a Tensor"):
        to_dot(np.ones(2))
    assert isinstance(tensor([1.0]), Tensor)
