"""The run's model graph (`graph.dot`, written by kinone-train) and what the Graph view shows of
a node: a Function's docstring (its forward and gradient math), a parameter's gradient norms.

The file is not trusted: it is read through `open_run_file` (a regular file inside the run, no
link followed), at most `MAX_GRAPH_BYTES`, and parsed strictly (`kinone.autograd.graph.parse_dot`);
what is drawn is the parsed graph written again, so only labels and Kinone's own attributes
reach the browser. A docstring is looked up by name among the Functions this installation has
imported (kinone.autograd's and kinone.nn's): nothing named in the file is ever imported.
"""

from __future__ import annotations

import inspect

import pandas as pd

from kinone.autograd import Function
from kinone.autograd.graph import Graph, GraphNode, function_path, parse_dot

from .files import UnsafeRunFile, open_run_file

GRAPH_FILE = "graph.dot"
# A collapsed ResNet-152 is about 20 kB; an expanded EfficientNet-B7 about 2 MB.
MAX_GRAPH_BYTES = 8 * 2**20
# More nodes than this are listed but not drawn (the browser's layout would take minutes).
MAX_DRAWN_NODES = 3000


def read_graph(run_dir) -> tuple[Graph | None, str]:
    """The run's graph and an error message ("" when fine); (None, "") when it has none."""
    try:
        with open_run_file(run_dir, GRAPH_FILE) as f:
            data = f.read(MAX_GRAPH_BYTES + 1)
    except FileNotFoundError:
        return None, ""
    except UnsafeRunFile as error:
        return None, f"{GRAPH_FILE} refused: {error}"
    except OSError as error:
        return None, f"{GRAPH_FILE} unreadable: {error.strerror or error}"
    if len(data) > MAX_GRAPH_BYTES:
        return None, f"{GRAPH_FILE} refused: larger than {MAX_GRAPH_BYTES // 2**20} MiB"
    try:
        return parse_dot(data.decode("utf-8")), ""
    except (UnicodeDecodeError, ValueError) as error:
        return None, f"{GRAPH_FILE} unreadable: {error}"


def known_functions() -> dict[str, type]:
    """Every Function subclass imported in this process (kinone.nn.functional imported first), by
    `function_path` ("kinone.nn.functional.conv.Conv2d")."""
    import kinone.nn.functional  # noqa: F401  (registers kinone.nn's Functions)

    found, stack = {}, [Function]
    while stack:
        for sub in stack.pop().__subclasses__():
            if function_path(sub) not in found:
                found[function_path(sub)] = sub
                stack.append(sub)
    return found


def function_doc(path: str) -> str:
    """The docstring of the Function at `path` ("" when this installation has no such Function)."""
    cls = known_functions().get(path)
    return inspect.getdoc(cls) or "" if cls is not None else ""


def node_label(node: GraphNode) -> str:
    """How the node is offered in the Graph view's list: its id, title and kind."""
    return f"{node.id} · {node.title} ({node.kind})"


def node_parameters(node: GraphNode) -> tuple[str, ...]:
    """The parameters whose gradient norms belong to a node: a leaf's own name, a module's folded ones."""
    if node.kind == "leaf" and node.name:
        return (node.name,)
    return node.parameters if node.kind == "module" else ()


def parameter_history(grads: pd.DataFrame, parameters) -> pd.DataFrame:
    """Long form (step, parameter, grad norm) of `grads` (step x parameter, see
    `grad_norm_frame`) for the given parameters the log has; empty when none."""
    columns = [p for p in parameters if p in grads.columns]
    if grads.empty or not columns:
        return pd.DataFrame(columns=["step", "parameter", "grad norm"])
    frame = grads[columns].reset_index().melt(id_vars="step", var_name="parameter", value_name="grad norm")
    return frame.dropna().reset_index(drop=True)
