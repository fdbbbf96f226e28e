"""Draw the recorded graph: DOT text from a tensor's `grad_fn` back to the leaves.

    >>> from kinone.autograd import tensor
    >>> from kinone.autograd.graph import to_dot
    >>> w = tensor([1.0, 2.0], requires_grad=True)
    >>> print(to_dot((w * w).sum(), names={w: "w"}))          # doctest: +SKIP
    digraph kinone {
      ...
      n0 [label="w\\n(2,) float32", ...];
      n1 [label="Mul\\n(2,) float32", ...];
      n2 [label="Sum\\n() float32", ...];
      n0 -> n1;
      n0 -> n1;
      n1 -> n2;
    }

One node per Function (its class name, output shape and dtype), one per leaf (its name when
`names` gives one), one per input that does not require grad (a grey "no grad" node: the graph
keeps only its shape). Nodes and edges are listed in data-flow order: every node after the
nodes it reads, a node's incoming edges in the order of its inputs. DOT is text, so no
dependency: render it with Graphviz (`dot -Tsvg`) or Streamlit's `st.graphviz_chart`.

The graph holds no output tensors, so a node's output shape is read where it is used: from its
consumer's recorded input shapes (the root's from the tensor). Backward frees the graph as it
walks it: draw before `backward()`, or call `backward(retain_graph=True)`.

Each node also carries `kinone_*` attributes that Graphviz ignores and readers (the dashboard)
use: `kinone_kind` (function, leaf, constant, module), `kinone_function` (the Function's
module path and class name), `kinone_name` (a leaf's or module's name), `kinone_parameters`
(a collapsed module's parameters, space-separated). `Graph` is the structure behind the text;
`kinone.nn.graph` builds one per module from a traced forward; `parse_dot` reads the text
back (the subset written here, strictly: anything else is an error naming the line).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .function import Function
from .tensor import Tensor

KINDS = ("function", "leaf", "constant", "module")
# Fill colours by kind: parameters blue, inputs grey, collapsed modules yellow.
_STYLE = {
    "function": 'shape=box, style="rounded"',
    "leaf": 'shape=ellipse, style=filled, fillcolor="#dbe9f6"',
    "constant": 'shape=ellipse, style=filled, fillcolor="#eeeeee"',
    "module": 'shape=box3d, style=filled, fillcolor="#fff2cc"',
}


@dataclass
class GraphNode:
    """One node: `title` is its first line (a Function's class name, a leaf's name, a module's
    path), followed by `detail` (if any) and the output `shape` and `dtype`."""

    id: str
    kind: str
    title: str
    shape: tuple | None = None
    dtype: str | None = None
    function: str = ""  # "package.module.Class" of a Function node
    name: str = ""  # a leaf's or a module's name
    detail: str = ""
    cluster: str = ""  # nodes with the same non-empty cluster are boxed together, labelled with it
    parameters: tuple = ()  # a collapsed module's parameter names

    def label(self) -> str:
        lines = [self.title] + ([self.detail] if self.detail else [])
        if self.shape is not None:
            lines.append(f"{tuple(self.shape)} {self.dtype}")
        return "\n".join(lines)


@dataclass
class Graph:
    """Nodes and edges (pairs of node ids), both in data-flow order."""

    nodes: list[GraphNode] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)

    def node(self, node_id: str) -> GraphNode:
        return next(n for n in self.nodes if n.id == node_id)

    def to_dot(self, name: str = "kinone") -> str:
        """The graph as DOT text (a `digraph`, data flowing top to bottom)."""
        lines = [f"digraph {name} {{", "  rankdir=TB;", '  node [fontname="Helvetica", fontsize=10];']
        clusters: dict[str, list[str]] = {}
        for node in self.nodes:
            lines.append(f"  {node.id} [{_node_attributes(node)}];")
            if node.cluster:
                clusters.setdefault(node.cluster, []).append(node.id)
        for i, (cluster, members) in enumerate(clusters.items()):
            lines.append(f"  subgraph cluster_{i} {{ label={quote(cluster)}; style=dashed; {'; '.join(members)}; }}")
        lines += [f"  {src} -> {dst};" for src, dst in self.edges]
        lines.append("}")
        return "\n".join(lines) + "\n"


def quote(text: str) -> str:
    """`text` as a DOT double-quoted string (backslashes and quotes escaped, newlines as \\n)."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _node_attributes(node: GraphNode) -> str:
    attributes = [f"label={quote(node.label())}", _STYLE[node.kind], f"kinone_kind={quote(node.kind)}"]
    if node.function:
        attributes.append(f"kinone_function={quote(node.function)}")
    if node.name:
        attributes.append(f"kinone_name={quote(node.name)}")
    if node.parameters:
        attributes.append(f"kinone_parameters={quote(' '.join(node.parameters))}")
    return ", ".join(attributes)


def function_path(cls: type) -> str:
    """Where a Function class lives: "kinone.nn.functional.conv.Conv2d"."""
    return f"{cls.__module__}.{cls.__qualname__}"


def tensor_names(names) -> dict[int, str]:
    """`names` (a mapping tensor -> name, or name -> tensor such as `dict(model.named_parameters())`)
    as {id(tensor): name}."""
    if not names:
        return {}
    items = list(names.items()) if isinstance(names, Mapping) else list(names)
    out = {}
    for key, value in items:
        tensor, name = (value, key) if isinstance(key, str) else (key, value)
        if not isinstance(tensor, Tensor):
            raise TypeError(
                f"to_dot: names must map tensors to names (or names to tensors); got a {type(tensor).__name__}"
            )
        out[id(tensor)] = str(name)
    return out


def _freed_error(node: Function) -> RuntimeError:
    return RuntimeError(
        f"to_dot: the graph at {type(node).__name__} was freed by backward; "
        "draw it before backward(), or call backward(retain_graph=True)"
    )


def _data_flow_order(root: Function, constants: bool) -> list:
    """Every Function and leaf reachable from `root`, each after what it reads (a post-order
    walk with an explicit stack: no recursion, so a 100,000-op chain is fine). An input that
    does not require grad appears as ("constant", consumer, position) when `constants`."""
    order: list = []
    seen = {id(root)}
    stack = [(root, 0)]
    while stack:
        node, position = stack.pop()
        edges = node.edges
        if edges is None:
            raise _freed_error(node)
        if position == len(edges):
            order.append(node)
            continue
        stack.append((node, position + 1))
        parent = edges[position]
        if parent is None:
            if constants:
                order.append(("constant", node, position))
        elif id(parent) not in seen:
            seen.add(id(parent))
            if isinstance(parent, Function):
                stack.append((parent, 0))
            else:
                order.append(parent)
    return order


def build_graph(tensor: Tensor, names=None, constants: bool = True) -> Graph:
    """The `Graph` recorded behind `tensor` (see the module docstring); `names` maps leaf
    tensors to names (`{p: n for n, p in model.named_parameters()}`, or that dict uninverted)."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot: expected a Tensor, got {type(tensor).__name__}")
    leaf_names = tensor_names(names)
    graph = Graph()
    if tensor.grad_fn is None:
        graph.nodes.append(_leaf_node("n0", tensor, leaf_names))
        return graph
    order = _data_flow_order(tensor.grad_fn, constants)
    ids: dict[int, str] = {}
    nodes: dict[str, GraphNode] = {}
    for item in order:
        node_id = f"n{len(ids)}"
        key = id(item) if not isinstance(item, tuple) else (id(item[1]), item[2])
        ids[key] = node_id
        if isinstance(item, tuple):
            _, consumer, position = item
            nodes[node_id] = GraphNode(
                node_id, "constant", "no grad", consumer.input_shapes[position], str(consumer.input_dtypes[position])
            )
        elif isinstance(item, Function):
            nodes[node_id] = GraphNode(node_id, "function", type(item).__name__, function=function_path(type(item)))
        else:
            nodes[node_id] = _leaf_node(node_id, item, leaf_names)
    root = nodes[ids[id(tensor.grad_fn)]]
    root.shape, root.dtype = tensor.shape, str(tensor.dtype)
    for item in order:
        if not isinstance(item, Function):
            continue
        for position, (parent, shape, dtype) in enumerate(zip(item.edges, item.input_shapes, item.input_dtypes)):
            if parent is None and not constants:
                continue
            source = ids[(id(item), position)] if parent is None else ids[id(parent)]
            if nodes[source].shape is None:  # a Function's output shape, as its consumer recorded it
                nodes[source].shape, nodes[source].dtype = shape, str(dtype)
            graph.edges.append((source, ids[id(item)]))
    graph.nodes = list(nodes.values())
    return graph


def _leaf_node(node_id: str, leaf: Tensor, leaf_names: dict) -> GraphNode:
    name = leaf_names.get(id(leaf), "")
    return GraphNode(node_id, "leaf", name or "leaf", leaf.shape, str(leaf.dtype), name=name)


def to_dot(tensor: Tensor, names=None, constants: bool = True, name: str = "kinone") -> str:
    """DOT text of the graph recorded behind `tensor` (see the module docstring)."""
    return build_graph(tensor, names, constants).to_dot(name)


# ---------------------------------------------------------------------------------- reading DOT back
_TOKEN = re.compile(r'\s+|//[^\n]*|(?P<token>"(?:[^"\\]|\\.)*"|->|[{}\[\];,=]|[A-Za-z_][A-Za-z_0-9.]*|-?\d+(?:\.\d+)?)')
_SHAPE_LINE = re.compile(r"^\((\d+(?:, \d+)*,?)?\) (\w+)$")


def _tokens(text: str) -> list[tuple[str, int]]:
    """DOT tokens with their line numbers; an unexpected character is an error naming its line."""
    out, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            line = text.count("\n", 0, position) + 1
            raise ValueError(f"parse_dot: unexpected character {text[position]!r} on line {line}")
        if match.group("token"):
            out.append((match.group("token"), text.count("\n", 0, position) + 1))
        position = match.end()
    return out


def _unquote(token: str) -> str:
    if not token.startswith('"'):
        return token
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), token[1:-1])


class _Parser:
    """A recursive-descent reader of the DOT that `Graph.to_dot` writes (strict)."""

    def __init__(self, text: str):
        self.tokens, self.i = _tokens(text), 0

    def peek(self, offset: int = 0) -> str | None:
        j = self.i + offset
        return self.tokens[j][0] if j < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        if self.i >= len(self.tokens):
            raise ValueError(f"parse_dot: the text ended where {expected or 'more'} was expected")
        token, line = self.tokens[self.i]
        if expected is not None and token != expected:
            raise ValueError(f"parse_dot: expected {expected!r} on line {line}, found {token!r}")
        self.i += 1
        return token

    def identifier(self) -> str:
        token = self.take()
        if token in "{}[];,=" or token == "->":
            raise ValueError(f"parse_dot: expected a name on line {self.tokens[self.i - 1][1]}, found {token!r}")
        return _unquote(token)

    def attributes(self) -> dict:
        self.take("[")
        attrs = {}
        while self.peek() != "]":
            key = self.identifier()
            self.take("=")
            attrs[key] = self.identifier()
            if self.peek() == ",":
                self.take(",")
        self.take("]")
        return attrs

    def statements(self, graph: Graph, nodes: dict) -> None:
        while self.peek() != "}":
            head = self.identifier()
            if head == "subgraph":
                self.identifier()
                self.take("{")
                members: list[str] = []
                label = self.cluster_body(members)
                for member in members:
                    if member not in nodes:
                        raise ValueError(f"parse_dot: cluster {label!r} names an undeclared node {member}")
                    nodes[member].cluster = label
                if self.peek() == ";":
                    self.take(";")
                continue
            elif head in ("node", "edge", "graph") and self.peek() == "[":
                self.attributes()
            elif self.peek() == "=":
                self.take("=")
                self.identifier()
            elif self.peek() == "->":
                self.take("->")
                target = self.identifier()
                for end in (head, target):
                    if end not in nodes:
                        raise ValueError(f"parse_dot: edge {head} -> {target} names an undeclared node {end}")
                graph.edges.append((head, target))
            elif self.peek() == "[":
                nodes[head] = _parsed_node(head, self.attributes())
                graph.nodes.append(nodes[head])
            else:
                raise ValueError(f"parse_dot: unexpected statement at {head!r} (line {self.tokens[self.i - 1][1]})")
            self.take(";")

    def cluster_body(self, members: list) -> str:
        label = ""
        while self.peek() != "}":
            head = self.identifier()
            if self.peek() == "=":
                self.take("=")
                value = self.identifier()
                label = value if head == "label" else label
            else:
                members.append(head)
            if self.peek() == ";":
                self.take(";")
        self.take("}")
        return label


def _parsed_node(node_id: str, attrs: dict) -> GraphNode:
    kind = attrs.get("kinone_kind", "function")
    if kind not in KINDS:
        raise ValueError(f"parse_dot: node {node_id} has an unknown kinone_kind {kind!r} (expected one of {KINDS})")
    lines = attrs.get("label", node_id).split("\n")
    shape = dtype = None
    match = _SHAPE_LINE.match(lines[-1]) if len(lines) > 1 else None
    if match:
        shape = tuple(int(n) for n in match.group(1).rstrip(",").split(", ")) if match.group(1) else ()
        dtype, lines = match.group(2), lines[:-1]
    parameters = tuple(attrs.get("kinone_parameters", "").split())
    return GraphNode(
        node_id,
        kind,
        lines[0],
        shape,
        dtype,
        attrs.get("kinone_function", ""),
        attrs.get("kinone_name", ""),
        "\n".join(lines[1:]),
        parameters=parameters,
    )


def parse_dot(text: str) -> Graph:
    """The `Graph` written as `text` by `Graph.to_dot` (nodes, edges, clusters and the
    `kinone_*` attributes); a ValueError naming the line for text outside that subset."""
    parser = _Parser(text)
    if parser.take() != "digraph":
        raise ValueError("parse_dot: expected a digraph")
    if parser.peek() != "{":
        parser.identifier()
    parser.take("{")
    graph: Graph = Graph()
    parser.statements(graph, {})
    parser.take("}")
    if parser.peek() is not None:
        raise ValueError(f"parse_dot: text after the graph's closing brace (line {parser.tokens[parser.i][1]})")
    return graph
