"""`load`: an ONNX file as a Kinone `Module` that runs, differentiates and fine-tunes.

    model = kinone.onnx.load("model.onnx")     # exported by Kinone, or any model of the same ops
    logits = model(x)                           # Kinone ops: loss.backward() reaches the weights
    model.state_dict().keys()                   # the initializer names: "layer1.0.conv1.weight", ...

The graph's initializers become the module's parameters, nested as their dotted names say,
so a file exported by Kinone gives back the original state-dict keys (and its weights load
into the original architecture). Inputs 3 and 4 of BatchNormalization (running mean and
variance) become buffers. `forward` interprets the nodes in order with the importers of
`importers.py`; in training mode, batch norm uses batch statistics and dropout drops, as in
the model that was exported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from kinone import nn
from kinone.autograd import Tensor

from .importers import IMPORTERS

_TRAINING_AWARE = {"BatchNormalization", "Dropout"}
_BUFFER_INPUTS = {"BatchNormalization": (3, 4)}  # running mean and variance


@dataclass
class Node:
    """One ONNX node with its attributes as Python values."""

    op_type: str
    name: str
    inputs: list
    outputs: list
    attrs: dict


def _attribute(attribute):
    value = helper.get_attribute_value(attribute)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, list):
        return [v.decode() if isinstance(v, bytes) else v for v in value]
    return value


def _constant_value(node: Node) -> np.ndarray:
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in node.attrs:
            value = node.attrs[key]
            return np.asarray(value, dtype=np.float32 if "float" in key else (np.int64 if "int" in key else None))
    raise ValueError(f"kinone.onnx.load: Constant node {node.name!r} has none of value/value_float(s)/value_int(s)")


class OnnxModule(nn.Module):
    """A Module that runs an ONNX graph with Kinone ops (see the module docstring)."""

    def __init__(self, graph: onnx.GraphProto):
        super().__init__()
        initializers = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        nodes = [Node(n.op_type, n.name, list(n.input), list(n.output), {a.name: _attribute(a) for a in n.attribute})
                 for n in graph.node]
        buffers = {node.inputs[i] for node in nodes for i in _BUFFER_INPUTS.get(node.op_type, ()) if i < len(node.inputs)}
        self._places = {}  # initializer name -> (module path, attribute)
        for name, array in initializers.items():
            *path, leaf = name.split(".") if all(name.split(".")) else [name.replace(".", "_")]
            owner = self
            for part in path:
                child = owner._modules.get(part)
                if child is None:
                    child = nn.Module()
                    owner.add_module(part, child)
                owner = child
            array = np.array(array)  # writable, owned
            if name in buffers:
                owner.register_buffer(leaf, Tensor(array))
            else:
                owner.register_parameter(leaf, nn.Parameter(array))
            self._places[name] = (tuple(path), leaf)
        self._nodes = [node for node in nodes if node.op_type != "Constant"]
        self._constants = {node.outputs[0]: _constant_value(node) for node in nodes if node.op_type == "Constant"}
        self.input_names = [i.name for i in graph.input if i.name not in initializers]
        self.output_names = [o.name for o in graph.output]

    def _initializer(self, name: str) -> Tensor:
        path, leaf = self._places[name]
        owner = self
        for part in path:
            owner = owner._modules[part]
        return getattr(owner, leaf)

    def forward(self, *inputs):
        if len(inputs) != len(self.input_names):
            raise ValueError(f"OnnxModule: the graph takes {len(self.input_names)} inputs {self.input_names}, got {len(inputs)}")
        values = {name: x if isinstance(x, Tensor) else Tensor(np.asarray(x)) for name, x in zip(self.input_names, inputs)}
        for name, array in self._constants.items():
            values[name] = Tensor(array)
        for name in self._places:
            values[name] = self._initializer(name)
        for node in self._nodes:
            args = [values[i] if i else None for i in node.inputs]
            while args and args[-1] is None:
                args.pop()
            kwargs = {"training": self.training} if node.op_type in _TRAINING_AWARE else {}
            try:
                values[node.outputs[0]] = IMPORTERS[node.op_type](node, *args, **kwargs)
            except (ValueError, TypeError, IndexError) as error:
                raise type(error)(f"OnnxModule: node {node.name!r} ({node.op_type}): {error}") from error
        outputs = tuple(values[name] for name in self.output_names)
        return outputs[0] if len(outputs) == 1 else outputs


def load(source) -> OnnxModule:
    """An `OnnxModule` for an ONNX file (a path) or a `ModelProto`. Every operator must have an
    importer (the default domain, the operators `export` writes and a few more); otherwise a
    ValueError lists the missing operators and the nodes that use them."""
    proto = source if isinstance(source, onnx.ModelProto) else onnx.load(str(Path(source)))
    onnx.checker.check_model(proto)
    domains = {o.domain for o in proto.opset_import} - {"", "ai.onnx"}
    missing: dict[str, list[str]] = {}
    for node in proto.graph.node:
        if node.domain not in ("", "ai.onnx"):
            missing.setdefault(f"{node.domain}::{node.op_type}", []).append(node.name)
        elif node.op_type not in IMPORTERS and node.op_type != "Constant":
            missing.setdefault(node.op_type, []).append(node.name)
        elif len([o for o in node.output if o]) > 1 and node.op_type not in ("Dropout",):
            missing.setdefault(f"{node.op_type} with {len(node.output)} outputs", []).append(node.name)
    if missing:
        listed = "; ".join(f"{op} (nodes {', '.join(repr(n) for n in names[:3])}{', ...' if len(names) > 3 else ''})"
                           for op, names in sorted(missing.items()))
        raise ValueError(f"kinone.onnx.load: no Kinone form for: {listed}" + (f"; opset domains {sorted(domains)}" if domains else ""))
    return OnnxModule(proto.graph)
