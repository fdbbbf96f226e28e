"""`load`: an ONNX file as a Kinone `Module` that runs, differentiates and fine-tunes.

    model = kinone.onnx.load("model.onnx")     # exported by Kinone, or any model of the same ops
    logits = model(x)                           # eval mode: an ONNX file is an inference graph
    model.train()                               # to fine-tune: loss.backward() reaches the weights
    model.state_dict().keys()                   # the initializer names: "layer1.0.conv1.weight", ...

The graph's floating initializers become the module's parameters, nested as their dotted
names say, so a file exported by Kinone gives back the original state-dict keys (and its
weights load into the original architecture). Inputs 3 and 4 of BatchNormalization (running
mean and variance) become buffers, and so do integer and boolean initializers (Reshape's
shape as `torch.onnx.export` writes it, a mask): constants of the graph, never trained.
A name that cannot be an attribute as it stands (`forward`, `_parameters`, both `w` and
`w.x`) is placed under the first free name with `_` appended; `initializer_keys` maps every
ONNX name to its state-dict key.

The module starts in eval mode, as the graph was exported: batch norm uses its running
statistics and leaves them alone, dropout is the identity. After `.train()`, batch norm uses
batch statistics (and updates the running ones) and dropout drops, as in the model that was
exported. External data is read only from regular files inside the model's folder
(`external_data.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import onnx
from kinone import nn
from kinone.autograd import Tensor
from onnx import helper, numpy_helper

from . import external_data
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


def _type_name(data_type: int) -> str:
    try:
        return onnx.TensorProto.DataType.Name(data_type)
    except ValueError:
        return f"data type {data_type}"


def _tensor(proto: onnx.TensorProto, as_buffer: bool) -> Tensor:
    """An initializer as Kinone holds it: a floating one as a Parameter (a buffer where the
    node that reads it says so), an integer or boolean one as a buffer (a constant of the
    graph: Reshape's shape, a mask); any other type is refused, naming the initializer."""
    type_name = _type_name(proto.data_type)
    try:
        array = np.array(numpy_helper.to_array(proto))  # writable, owned
    except Exception as error:
        raise ValueError(
            f"kinone.onnx.load: initializer {proto.name!r} ({type_name}) cannot be read: {error}"
        ) from None
    if array.dtype.kind == "f" and array.dtype.itemsize in (2, 4, 8):
        return Tensor(array) if as_buffer else nn.Parameter(array)
    if array.dtype.kind in "iub":
        return Tensor(array)
    raise ValueError(
        f"kinone.onnx.load: initializer {proto.name!r} has dtype {type_name}; "
        "Kinone holds float16/32/64 (parameters), integer and bool (buffers)"
    )


class _Placer:
    """Where each initializer goes in the module tree: its dotted name split into submodules
    and a leaf attribute, as a Kinone export writes state-dict keys.

    A part that cannot be an attribute as it stands (one of the Module's own: `forward`,
    `training`, `_parameters`, `input_names`...; a leaf where another name needs a submodule,
    as with `w` and `w.x`) takes the first free name with `_` appended. Names that need no
    change are placed first, so that they keep their keys whatever the order of the file;
    then the others, in the file's order. A name with an empty part (`a..b`, `.w`) is one
    attribute with its dots as underscores."""

    def __init__(self, root: nn.Module):
        self.blank = nn.Module()
        self.prefixes: dict[tuple, tuple[nn.Module, tuple]] = {(): (root, ())}  # ONNX prefix -> (module, path)

    @staticmethod
    def split(name: str) -> list[str]:
        parts = name.split(".")
        return parts if all(parts) else [name.replace(".", "_") or "_"]

    @staticmethod
    def free(owner: nn.Module, attribute: str) -> bool:
        return not (
            hasattr(type(owner), attribute)
            or attribute in owner.__dict__
            or attribute in owner._parameters
            or attribute in owner._buffers
            or attribute in owner._modules
        )

    def fits(self, parts: list[str]) -> bool:
        """Whether `parts` can be placed with no part changed: the first part past the longest
        prefix already placed is free there, and the rest are free in a new Module."""
        i = max(i for i in range(len(parts)) if tuple(parts[:i]) in self.prefixes)
        owner, _ = self.prefixes[tuple(parts[:i])]
        return self.free(owner, parts[i]) and all(self.free(self.blank, part) for part in parts[i + 1 :])

    def place_all(self, tensors: dict[str, Tensor]) -> dict[str, tuple[tuple, str]]:
        """Register every tensor (a Parameter as a parameter, else a buffer), those whose
        names fit unchanged first; each name's (module path, attribute)."""
        places, later = {}, []
        for name in tensors:
            if self.fits(self.split(name)):
                places[name] = self.place(name, tensors[name])
            else:
                later.append(name)
        for name in later:
            places[name] = self.place(name, tensors[name])
        return {name: places[name] for name in tensors}

    def place(self, name: str, tensor: Tensor) -> tuple[tuple, str]:
        """Create the submodules `name` needs and register `tensor` in the last."""
        parts = self.split(name)
        for i in range(1, len(parts)):
            prefix = tuple(parts[:i])
            if prefix not in self.prefixes:
                owner, path = self.prefixes[prefix[:-1]]
                attribute = self.first_free(owner, parts[i - 1])
                child = nn.Module()
                owner.add_module(attribute, child)
                self.prefixes[prefix] = (child, (*path, attribute))
        owner, path = self.prefixes[tuple(parts[:-1])]
        leaf = self.first_free(owner, parts[-1])
        if isinstance(tensor, nn.Parameter):
            owner.register_parameter(leaf, tensor)
        else:
            owner.register_buffer(leaf, tensor)
        return path, leaf

    def first_free(self, owner: nn.Module, attribute: str) -> str:
        while not self.free(owner, attribute):
            attribute += "_"
        return attribute


class OnnxModule(nn.Module):
    """A Module that runs an ONNX graph with Kinone ops (see the module docstring).

    `initializer_keys` maps each initializer's ONNX name to its state-dict key: the same
    string, except where the name cannot be an attribute as it stands (see `_Placer`)."""

    def __init__(self, graph: onnx.GraphProto):
        super().__init__()
        nodes = [
            Node(n.op_type, n.name, list(n.input), list(n.output), {a.name: _attribute(a) for a in n.attribute})
            for n in graph.node
        ]
        names = {t.name for t in graph.initializer}
        # The Module's own attributes first, so that no initializer can take their names.
        self._nodes = [node for node in nodes if node.op_type != "Constant"]
        self._constants = {node.outputs[0]: _constant_value(node) for node in nodes if node.op_type == "Constant"}
        self.input_names = [i.name for i in graph.input if i.name not in names]
        self.output_names = [o.name for o in graph.output]
        self._places = {}  # initializer name -> (module path, attribute)
        self.initializer_keys = {}  # initializer name -> state-dict key
        buffers = {
            node.inputs[i] for node in nodes for i in _BUFFER_INPUTS.get(node.op_type, ()) if i < len(node.inputs)
        }
        tensors = {t.name: _tensor(t, as_buffer=t.name in buffers) for t in graph.initializer}
        self._places = _Placer(self).place_all(tensors)
        self.initializer_keys = {name: ".".join((*path, leaf)) for name, (path, leaf) in self._places.items()}

    def _initializer(self, name: str) -> Tensor:
        path, leaf = self._places[name]
        owner = self
        for part in path:
            owner = owner._modules[part]
        return owner._parameters[leaf] if leaf in owner._parameters else owner._buffers[leaf]

    def forward(self, *inputs):
        if len(inputs) != len(self.input_names):
            raise ValueError(
                f"OnnxModule: the graph takes {len(self.input_names)} inputs {self.input_names}, got {len(inputs)}"
            )
        values = {
            name: x if isinstance(x, Tensor) else Tensor(np.asarray(x)) for name, x in zip(self.input_names, inputs)
        }
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
    """An `OnnxModule` for an ONNX file (a path) or a `ModelProto`, in eval mode (`.train()`
    to fine-tune it). Every operator must have an importer (the default domain, the operators
    `export` writes and a few more); otherwise a ValueError lists the missing operators and
    the nodes that use them. External data is read only from regular files inside the model
    file's folder (`external_data.py`); a ModelProto that still refers to some is refused."""
    if isinstance(source, onnx.ModelProto):
        proto = source
        external_data.inline(proto, None)  # refuses, changes nothing
    else:
        path = Path(source)
        proto = onnx.load(str(path), load_external_data=False)
        external_data.inline(proto, path.parent)
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
        listed = "; ".join(
            f"{op} (nodes {', '.join(repr(n) for n in names[:3])}{', ...' if len(names) > 3 else ''})"
            for op, names in sorted(missing.items())
        )
        raise ValueError(
            f"kinone.onnx.load: no Kinone form for: {listed}"
            + (f"; opset domains {sorted(domains)}" if domains else "")
        )
    return OnnxModule(proto.graph).eval()
