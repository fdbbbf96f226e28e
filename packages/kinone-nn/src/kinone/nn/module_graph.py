"""A model's graph by module: one box per `layer1.0`, or every Function boxed by its module.

    >>> from kinone import models, nn
    >>> import numpy as np
    >>> dot = nn.graph(models.resnet18(), np.zeros((1, 3, 64, 64), np.float32))   # 16 nodes
    >>> dot = nn.graph(models.resnet18(), np.zeros((1, 3, 64, 64), np.float32), expand=True)

The forward is traced (kinone.autograd.tracing reports every Function.apply; forward pre- and
post-hooks on every module say which module is running), in eval mode and under `no_grad`: no
batch-norm statistic moves, no random number is drawn, and each module's mode is restored
afterwards, so drawing a model changes nothing about it.

Every Function call belongs to the deepest module whose dotted name has at most `depth`
parts (`depth=2`: `layer1.0`, `conv1`, `fc`); calls made by the model's own forward (ResNet's
flatten) belong to none. Collapsed (the default), each module call is one node listing its
class, its number of Function calls and its output shape, and the parameters and buffers only
it reads are folded into it (named in `kinone_parameters`). With `expand=True` every Function
and parameter is a node of its own, boxed in a cluster per module. The DOT is written by
`kinone.autograd.graph.Graph` (see it for the node attributes).
"""

from __future__ import annotations

import numpy as np

from kinone.autograd import Tensor, no_grad, register_apply_hook
from kinone.autograd.graph import Graph, GraphNode, function_path

DEPTH = 2


class _ForwardTrace:
    """The Function calls of one forward, each with the module calls open around it."""

    def __init__(self, model):
        self.names = {id(m): name for name, m in model.named_modules()}
        self.modules = dict(model.named_modules())
        self.stack: list[tuple[str, int]] = []
        self.calls: dict[str, int] = {}
        self.records: list = []

    def before(self, module, args) -> None:
        name = self.names.get(id(module))
        if name is not None:
            self.calls[name] = self.calls.get(name, 0) + 1
            self.stack.append((name, self.calls[name]))

    def after(self, module, args, output) -> None:
        if self.names.get(id(module)) is not None and self.stack:
            self.stack.pop()

    def on_apply(self, record) -> None:
        self.records.append((record, tuple(self.stack)))


def trace_forward(model, *inputs) -> tuple[_ForwardTrace, object]:
    """Run `model(*inputs)` in eval mode under no_grad, recording every Function call with the
    module calls around it; modes are restored afterwards. Returns the trace and the output."""
    trace = _ForwardTrace(model)
    modes = [(m, m.training) for m in model.modules()]
    handles = []
    try:
        for module, _ in modes:
            handles += [module.register_forward_pre_hook(trace.before), module.register_forward_hook(trace.after)]
        model.eval()
        with no_grad(), register_apply_hook(trace.on_apply):
            output = model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes:
            object.__setattr__(module, "training", training)
    return trace, output


def _group(stack: tuple, depth: int) -> tuple[str, int] | None:
    """The module call a Function call belongs to: the deepest with at most `depth` name parts."""
    chosen = None
    for name, call in stack:
        if name and name.count(".") + 1 <= depth:
            chosen = (name, call)
    return chosen


def build_graph(model, *inputs, expand: bool = False, depth: int = DEPTH) -> Graph:
    """The `Graph` of `model(*inputs)` by module (see the module docstring)."""
    if depth < 1:
        raise ValueError(f"nn.graph: depth must be at least 1, got {depth}")
    inputs = tuple(x if isinstance(x, Tensor) else Tensor(np.asarray(x)) for x in inputs)
    trace, _ = trace_forward(model, *inputs)
    parameters = {id(p): n for n, p in model.named_parameters()}
    buffers = {id(b): n for n, b in model.named_buffers()}
    input_names = {id(x): "input" if len(inputs) == 1 else f"input {i}" for i, x in enumerate(inputs)}
    graph = Graph()
    made: dict[int, str] = {}  # id(tensor) -> the node that made or is it
    group_of: dict[str, tuple] = {}  # Function node id -> its module call
    readers: dict[str, set] = {}  # parameter, buffer or constant node id -> the module calls (None: none) reading it
    for record, stack in trace.records:
        group = _group(stack, depth)
        sources = []
        for t in record.inputs:
            if id(t) not in made:
                made[id(t)] = _input_node(graph, t, parameters, buffers, input_names)
                if id(t) not in input_names:
                    readers[made[id(t)]] = set()
            sources.append(made[id(t)])
            if sources[-1] in readers:
                readers[sources[-1]].add(group)
        node_id = f"n{len(graph.nodes)}"
        graph.edges += [(source, node_id) for source in sources]
        output = record.output
        graph.nodes.append(
            GraphNode(
                node_id,
                "function",
                record.function.__name__,
                output.shape,
                str(output.dtype),
                function_path(record.function),
            )
        )
        made[id(output)] = node_id
        if group is not None:
            group_of[node_id] = group
    labels = {key: _group_label(trace, key) for key in dict.fromkeys(group_of.values())}
    if expand:
        return _clustered(graph, group_of, readers, labels)
    return _collapsed(graph, group_of, readers, labels, trace)


def _input_node(graph: Graph, t: Tensor, parameters: dict, buffers: dict, input_names: dict) -> str:
    """A node for a tensor no traced call made: a parameter (leaf), a buffer, an input or a constant."""
    node_id = f"n{len(graph.nodes)}"
    if id(t) in parameters:
        node = GraphNode(node_id, "leaf", parameters[id(t)], t.shape, str(t.dtype), name=parameters[id(t)])
    else:
        name = buffers.get(id(t)) or input_names.get(id(t), "")
        node = GraphNode(node_id, "constant", name or "constant", t.shape, str(t.dtype), name=name)
    graph.nodes.append(node)
    return node_id


def _group_label(trace: _ForwardTrace, key: tuple) -> str:
    name, call = key
    return name if trace.calls.get(name, 1) == 1 else f"{name} (call {call})"


def _owner(node_id: str, readers: dict):
    """The one module call that alone reads a parameter, buffer or constant node (None: none)."""
    groups = readers.get(node_id)
    if not groups or len(groups) != 1 or None in groups:
        return None
    return next(iter(groups))


def _clustered(graph: Graph, group_of: dict, readers: dict, labels: dict) -> Graph:
    """Every node kept; each in the cluster of its module call (a parameter: of the one that reads it)."""
    for node in graph.nodes:
        key = group_of.get(node.id) or _owner(node.id, readers)
        if key is not None:
            node.cluster = labels[key]
    return graph


def _collapsed(graph: Graph, group_of: dict, readers: dict, labels: dict, trace: _ForwardTrace) -> Graph:
    """One node per module call: its Function nodes merged, the parameters, buffers and
    constants only it reads folded in."""
    group_ids = {key: f"g{i}" for i, key in enumerate(labels)}
    represent: dict[str, str] = {}
    members: dict[tuple, list[GraphNode]] = {}
    folded: dict[tuple, list[str]] = {}
    for node in graph.nodes:
        key = group_of.get(node.id) or _owner(node.id, readers)
        represent[node.id] = node.id if key is None else group_ids[key]
        if key is None:
            continue
        if node.kind == "function":
            members.setdefault(key, []).append(node)
        elif node.kind == "leaf":
            folded.setdefault(key, []).append(node.name)
    out = Graph()
    first_of = {group_id: key for key, group_id in group_ids.items()}
    for node in graph.nodes:
        target = represent[node.id]
        if target == node.id:
            out.nodes.append(node)
        elif target in first_of:
            key = first_of.pop(target)
            ops, name = members[key], key[0]
            detail = f"{type(trace.modules[name]).__name__} · {len(ops)} op{'s' * (len(ops) != 1)}"
            out.nodes.append(
                GraphNode(
                    target,
                    "module",
                    labels[key],
                    ops[-1].shape,
                    ops[-1].dtype,
                    name=name,
                    detail=detail,
                    parameters=tuple(folded.get(key, ())),
                )
            )
    seen = set()
    for source, target in graph.edges:
        edge = (represent[source], represent[target])
        if edge[0] != edge[1] and edge not in seen:
            seen.add(edge)
            out.edges.append(edge)
    return out


def graph(model, *inputs, expand: bool = False, depth: int = DEPTH, name: str = "kinone") -> str:
    """DOT text of `model(*inputs)` by module (see the module docstring): collapsed to one node
    per module call of at most `depth` name parts, or every Function with `expand=True`."""
    return build_graph(model, *inputs, expand=expand, depth=depth).to_dot(name)
