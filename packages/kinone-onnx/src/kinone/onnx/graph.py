"""`GraphBuilder`: the ONNX graph being written, and `Call`: one traced Function call.

A converter (see `registry.py`) reads a `Call` (its Function, input value names and shapes,
attributes, output name and shape) and appends ONNX nodes through the builder: `node(...)`
for an operator, `constant(...)` for a constant tensor, and `reduce(...)` / `unsqueeze(...)`
for the operators whose signature changed between opsets. The last node it writes must
produce `call.output`.

Dynamic dims (the batch, and with `dynamic_size` the image size) are known exactly: the model
is traced a second time at another size (the probe), and a dim is dynamic where the two
traces differ. A converter whose operator bakes a shape into the graph (reshape, expand,
slice) reads `input_dynamic` / `output_dynamic` and the probe's shapes to write those dims in
a form that holds at any size ("copy it from the input", -1), or refuses with `call.error`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import onnx
from onnx import helper, numpy_helper


class ExportError(ValueError):
    """A model, or one call inside it, that cannot be written as ONNX (the message says which)."""


@dataclass
class Call:
    """One traced `Function.apply`, in ONNX terms.

    inputs / input_shapes: per tensor input, its value name and shape; output / output_shape /
    dtype: the value the converter must produce. input_dynamic / output_dynamic: per axis,
    whether that dim changes with the model's input size; probe_input_shapes /
    probe_output_shape: the same shapes in the probe trace (equal to the others when the graph
    is static). scope: the dotted path of the module that made the call.
    """

    function: type
    inputs: list[str]
    input_shapes: list[tuple]
    input_dynamic: list[tuple]
    probe_input_shapes: list[tuple]
    output: str
    output_shape: tuple
    output_dynamic: tuple
    probe_output_shape: tuple
    dtype: np.dtype
    attrs: dict
    scope: str

    @property
    def where(self) -> str:
        return f"module {self.scope!r}" if self.scope else "the model's own forward (no submodule)"

    def error(self, message: str) -> ExportError:
        return ExportError(f"kinone.onnx.export: {self.function.__name__} called in {self.where}: {message}")


class GraphBuilder:
    """Collects nodes, constants and value metadata while a trace is converted."""

    def __init__(self, opset: int):
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set()
        self._counts: dict[str, int] = {}
        self.scope = ""

    # ------------------------------------------------------------------ names
    def reserve(self, name: str) -> str:
        """Claim `name` for a value (initializer names, graph inputs)."""
        if name in self._names:
            raise ExportError(f"kinone.onnx.export: the value name {name!r} is used twice")
        self._names.add(name)
        return name

    def fresh(self, hint: str) -> str:
        """A new unique value name built from `hint`."""
        count = self._counts.get(hint, 0)
        while True:
            name = hint if count == 0 else f"{hint}_{count}"
            count += 1
            if name not in self._names:
                self._counts[hint] = count
                self._names.add(name)
                return name

    def _node_name(self, op_type: str) -> str:
        base = f"{self.scope}/{op_type}" if self.scope else op_type
        count = self._counts.get("node:" + base, 0)
        self._counts["node:" + base] = count + 1
        return base if count == 0 else f"{base}_{count}"

    # ------------------------------------------------------------------ writing
    def node(self, op_type: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        """Append one operator with a single output (a fresh name unless given); its name."""
        if output is None:
            output = self.fresh(f"{self.scope or 'model'}/{op_type}:0")
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=self._node_name(op_type), **attrs))
        return output

    def constant(self, value, dtype=None, hint: str = "const") -> str:
        """A `Constant` node holding `value` (an array or scalar, cast to `dtype` if given)."""
        array = np.asarray(value, dtype=dtype)
        name = self.fresh(f"{self.scope or 'model'}/{hint}")
        self.nodes.append(
            helper.make_node(
                "Constant", [], [name], name=self._node_name("Constant"), value=numpy_helper.from_array(array, name)
            )
        )
        return name

    def int64s(self, values, hint: str = "shape") -> str:
        """A 1-D int64 constant (shapes, axes, starts/ends of Slice)."""
        return self.constant(np.asarray(list(values), dtype=np.int64).reshape(-1), hint=hint)

    def initializer(self, name: str, array: np.ndarray) -> str:
        self.reserve(name)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    # ------------------------------------------------------------------ opset-dependent operators
    def reduce(self, op_type: str, x: str, axes, keepdims: bool, output: str | None = None) -> str:
        """ReduceSum/Mean/Max/Min/LogSumExp over `axes` (None: all). Axes are an input from
        opset 13 (ReduceSum) or 18 (the others), an attribute before."""
        keep = int(bool(keepdims))
        if axes is None:
            return self.node(op_type, [x], output, keepdims=keep)
        axes = [int(a) for a in axes]
        axes_as_input = self.opset >= (13 if op_type == "ReduceSum" else 18)
        if axes_as_input:
            return self.node(op_type, [x, self.int64s(axes, "axes")], output, keepdims=keep)
        return self.node(op_type, [x], output, keepdims=keep, axes=axes)

    def unsqueeze(self, x: str, axes, output: str | None = None) -> str:
        return self.node("Unsqueeze", [x, self.int64s(axes, "axes")], output)

    def squeeze(self, x: str, axes, output: str | None = None) -> str:
        return self.node("Squeeze", [x, self.int64s(axes, "axes")], output)


def tensor_type(dtype: np.dtype) -> int:
    """The ONNX element type of a NumPy dtype."""
    try:
        return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    except (KeyError, TypeError, ValueError):
        raise ExportError(f"kinone.onnx.export: dtype {dtype} has no ONNX element type") from None


def value_info(name: str, dtype: np.dtype, shape: tuple, dynamic: tuple, dim_names=None) -> onnx.ValueInfoProto:
    """A typed, shaped value; a dynamic dim is symbolic: "batch" for dim 0, else its name from
    `dim_names` or "<value>_<axis>"."""
    dims = []
    for axis, (size, is_dynamic) in enumerate(zip(shape, dynamic)):
        if not is_dynamic:
            dims.append(int(size))
        elif axis == 0:
            dims.append("batch")
        else:
            dims.append(dim_names[axis] if dim_names and dim_names[axis] else f"{name}_{axis}")
    return helper.make_tensor_value_info(name, tensor_type(dtype), dims)
