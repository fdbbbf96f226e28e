"""The Graph view: a run's graph.dot read safely, a node's docstring and gradient-norm history."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from dashboard_rundirs import LAYERS, grad_line, write_run_json

from kinone import nn
from kinone.autograd.graph import GraphNode, parse_dot
from kinone.dashboard import graph as G
from kinone.dashboard import runs as R


def _model_graph_text() -> str:
    """A collapsed graph whose parameter names are those the generated logs hold (LAYERS)."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3))
    graph = nn.module_graph.build_graph(model, np.ones((1, 1, 4, 4), np.float32), expand=True)
    renames = {
        "0.weight": "conv1.weight",
        "1.weight": "bn1.weight",
        "1.bias": "bn1.bias",
        "4.weight": "fc.weight",
        "4.bias": "fc.bias",
    }
    for node in graph.nodes:
        if node.name in renames:
            node.title = node.name = renames[node.name]
    graph.nodes.append(
        GraphNode(
            "m0",
            "module",
            "layer1.0",
            (1, 2, 4, 4),
            "float32",
            name="layer1.0",
            parameters=("layer1.0.conv1.weight", "bn1.weight", "not.logged"),
        )
    )
    return graph.to_dot()


@pytest.fixture
def graph_run(tmp_path) -> Path:
    run = tmp_path / "runs" / "drawn"
    write_run_json(run)
    (run / "metrics.jsonl").write_text("".join(grad_line(step, 0, scale=1 + step / 10) for step in range(0, 100, 10)))
    (run / "graph.dot").write_text(_model_graph_text())
    return run


def test_read_graph_parses_the_file_and_says_when_there_is_none(graph_run, tmp_path):
    graph, error = R.read_graph(graph_run)
    assert error == "" and graph == parse_dot(_model_graph_text())
    (tmp_path / "bare").mkdir()
    assert R.read_graph(tmp_path / "bare") == (None, "")


def test_read_graph_refuses_links_large_files_and_other_text(graph_run, tmp_path, monkeypatch):
    outside = tmp_path / "outside.dot"
    outside.write_text(_model_graph_text())
    (graph_run / "graph.dot").unlink()
    os.symlink(outside, graph_run / "graph.dot")
    graph, error = R.read_graph(graph_run)
    assert graph is None and error.startswith("graph.dot refused") and "link" in error
    (graph_run / "graph.dot").unlink()
    (graph_run / "graph.dot").write_text(_model_graph_text())
    monkeypatch.setattr(G, "MAX_GRAPH_BYTES", 100)
    assert R.read_graph(graph_run) == (None, "graph.dot refused: larger than 0 MiB")
    monkeypatch.undo()
    (graph_run / "graph.dot").write_text('digraph g { n0 [label="x", URL="http://example.com/"]; n0 -> n9; }')
    graph, error = R.read_graph(graph_run)
    assert graph is None and "undeclared node n9" in error
    (graph_run / "graph.dot").write_bytes(b"\xff\xfe digraph")
    assert R.read_graph(graph_run)[1].startswith("graph.dot unreadable")


def test_what_is_drawn_is_the_parsed_graph_written_again():
    text = 'digraph g { n0 [label="x", URL="http://example.com/", image="/etc/passwd"]; }'
    drawn = parse_dot(text).to_dot()
    assert "example.com" not in drawn and "passwd" not in drawn and 'label="x"' in drawn


def test_function_docstrings_are_found_by_name_and_never_imported():
    doc = R.function_doc("kinone.nn.functional.conv.Conv2d")
    assert "dL/dW" in doc and "y =" in doc
    assert R.function_doc("kinone.autograd.ops.elementwise.ReLU")
    assert R.function_doc("os.system") == "" and R.function_doc("no.such.Function") == ""


def test_parameter_history_of_leaves_and_modules(graph_run):
    log = R.RunLog(graph_run)
    log.update()
    grads = R.grad_norm_frame(log.frame("grad_norm"))
    graph, _ = R.read_graph(graph_run)
    leaf = next(n for n in graph.nodes if n.name == "conv1.weight")
    assert R.node_parameters(leaf) == ("conv1.weight",)
    history = R.parameter_history(grads, R.node_parameters(leaf))
    assert list(history["step"]) == list(range(0, 100, 10))
    assert history["grad norm"].iloc[-1] == pytest.approx(0.1 * (1 + 90 / 10))
    module = graph.node("m0")
    history = R.parameter_history(grads, R.node_parameters(module))
    assert set(history["parameter"]) == {"layer1.0.conv1.weight", "bn1.weight"}  # "not.logged" is not in the log
    function = next(n for n in graph.nodes if n.kind == "function")
    assert R.node_parameters(function) == () and R.parameter_history(grads, ()).empty
    assert set(LAYERS) >= {"conv1.weight", "fc.bias"}


# ---------------------------------------------------------------------------------- the view
def _open_graph_view(runs_dir: Path, monkeypatch):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    import kinone.dashboard

    monkeypatch.setenv("KINONE_DASHBOARD_RUNS_DIR", str(runs_dir))
    at = AppTest.from_file(str(Path(kinone.dashboard.__file__).with_name("app.py")), default_timeout=120)
    at.query_params["run"] = "drawn"
    at.run()
    at.sidebar.radio[0].set_value("Graph").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_graph_view_draws_the_graph_and_explains_a_node(graph_run, monkeypatch):
    at = _open_graph_view(graph_run.parent, monkeypatch)
    assert at.header[0].value.endswith("model graph")
    (drawn,) = at.get("graphviz_chart")
    assert parse_dot(drawn.proto.spec) == parse_dot(_model_graph_text())
    select = at.selectbox(key="graph-node-drawn")
    conv = next(o for o in select.options if "Conv2d (function)" in o)
    select.set_value(conv).run()
    assert any("dL/dW" in c.value for c in at.code)
    leaf = next(o for o in select.options if "conv1.weight (leaf)" in o)
    at.selectbox(key="graph-node-drawn").set_value(leaf).run()
    assert not at.exception
    (chart,) = at.get("vega_lite_chart")
    assert "gradient norm of this parameter" in chart.proto.spec


def test_graph_view_of_a_run_without_graph(graph_run, monkeypatch):
    (graph_run / "graph.dot").unlink()
    at = _open_graph_view(graph_run.parent, monkeypatch)
    assert "No graph.dot in this run" in at.info[0].value
