"""`export`: run a model once under the tracing hook and write what it did as an ONNX graph.

    from kinone import models, onnx as kinone_onnx
    model = models.resnet18(num_classes=14, in_channels=1)
    kinone_onnx.export(model, Tensor(np.zeros((2, 1, 224, 224), np.float32)), "model.onnx")

The model runs in eval mode without a graph, and every `Function.apply` it makes is recorded
(kinone.autograd's tracing hook) together with the module it was called in. Each record goes
to the converter of its Function (`registry.py`, `converters/`), which writes ONNX nodes.
Parameters and buffers become initializers named by their state-dict keys; any other tensor
the model made without a Function (a constant) becomes a Constant node. Dead nodes are
dropped, the model is checked by `onnx.checker` (full check, with shape inference), and only
then written, atomically: an export that fails writes nothing.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np

import onnx
from kinone.autograd import Tensor, no_grad, register_apply_hook
from kinone.nn.serialization import atomic_write
from onnx import helper

from . import converters  # noqa: F401  (registers the converters)
from .__about__ import __version__
from .graph import Call, ExportError, GraphBuilder, value_info
from .registry import CONVERTERS, SHAPE_ATTRIBUTES, TRAINING_ONLY, supported_functions

MIN_OPSET = 13  # Squeeze/Unsqueeze/ReduceSum take axes as inputs, Softmax works on one axis
DEFAULT_OPSET = 17


def max_opset() -> int:
    """The newest default-domain opset the installed `onnx` package knows."""
    return onnx.defs.onnx_opset_version()


class _ModuleScopes:
    """Knows, during a forward, which module (by its dotted name) is running."""

    def __init__(self, model):
        self.stack: list[tuple[str, str]] = []
        self.handles = []
        if hasattr(model, "named_modules"):
            for name, module in model.named_modules():
                self.handles.append(module.register_forward_pre_hook(self._enter(name, type(module).__name__)))
                self.handles.append(module.register_forward_hook(self._leave))

    def _enter(self, name, kind):
        def hook(module, inputs):
            self.stack.append((name, kind))

        return hook

    def _leave(self, module, inputs, output):
        self.stack.pop()

    def current(self) -> tuple[str, str]:
        return self.stack[-1] if self.stack else ("", "")

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


@contextmanager
def eval_mode(model):
    """The model in eval mode inside the block; every submodule's own mode restored after."""
    modes = [(m, m.training) for m in model.modules()] if hasattr(model, "modules") else []
    if hasattr(model, "eval"):
        model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def trace_model(model, inputs: tuple) -> tuple[list, tuple]:
    """Run `model(*inputs)` in eval mode without a graph; return ([(record, (scope, module
    class))...], outputs as a tuple of Tensors). Every module's train/eval mode is restored."""
    scopes = _ModuleScopes(model)
    calls: list = []
    handle = register_apply_hook(lambda record: calls.append((record, scopes.current())))
    try:
        with eval_mode(model), no_grad():
            outputs = model(*inputs)
    finally:
        handle.remove()
        scopes.remove()
    outputs = tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)
    for i, out in enumerate(outputs):
        if not isinstance(out, Tensor):
            raise ExportError(f"kinone.onnx.export: the model's output {i} is a {type(out).__name__}, not a Tensor")
    return calls, outputs


def _as_inputs(example_input) -> tuple:
    examples = tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)
    tensors = []
    for i, x in enumerate(examples):
        x = (x if isinstance(x, Tensor) else Tensor(x)).cpu()
        if x.ndim == 0:
            raise ExportError(f"kinone.onnx.export: example input {i} is a scalar; inputs need a batch dim")
        tensors.append(x)
    return tuple(tensors)


def _check_names(kind: str, names, count: int) -> list[str]:
    names = [names] if isinstance(names, str) else list(names)
    if len(names) != count:
        raise ExportError(f"kinone.onnx.export: {count} {kind}(s) but {len(names)} {kind}_names {names}")
    if len(set(names)) != len(names):
        raise ExportError(f"kinone.onnx.export: {kind}_names must be distinct, got {names}")
    return names


def _check_opset(opset: int) -> int:
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= max_opset():
        raise ExportError(
            f"kinone.onnx.export: opset must be an int from {MIN_OPSET} to {max_opset()} (the newest this onnx "
            f"{onnx.__version__} knows), got {opset!r}"
        )
    return int(opset)


def _missing_converter(function: type, scope: str, kind: str) -> ExportError:
    where = f"module {scope!r} ({kind})" if scope else "the model's own forward"
    reason = TRAINING_ONLY.get(function)
    detail = f" ({reason})" if reason else f"; the exporter supports: {', '.join(supported_functions())}"
    return ExportError(
        f"kinone.onnx.export: no ONNX converter for {function.__module__}.{function.__qualname__}, called in "
        f"{where}{detail}. Nothing was written."
    )


@contextmanager
def on_cpu(model):
    """Inside the block the model is on the CPU: a model on a GPU is moved there (in place, as
    `Module.to` does) and moved back after. An ONNX file holds host arrays; tracing on the CPU
    keeps the exporter free of device code."""
    parameters = model.parameters() if hasattr(model, "parameters") else ()
    device = next((p.device for p in parameters), None)
    if device is None or device.type == "cpu":
        yield model
        return
    model.to("cpu")
    try:
        yield model
    finally:
        model.to(device)


def build_model(
    model,
    example_input,
    opset: int = DEFAULT_OPSET,
    input_names=("input",),
    output_names=("output",),
    dynamic_batch: bool = True,
    dynamic_size: bool = False,
) -> onnx.ModelProto:
    """The checked ONNX `ModelProto` that `export` writes (see `export`), without writing it.
    A model on a GPU is traced on the CPU (`on_cpu`)."""
    with on_cpu(model):
        return _build_model(model, example_input, opset, input_names, output_names, dynamic_batch, dynamic_size)


def _build_model(
    model, example_input, opset, input_names, output_names, dynamic_batch, dynamic_size
) -> onnx.ModelProto:
    opset = _check_opset(opset)
    inputs = _as_inputs(example_input)
    input_names = _check_names("input", input_names, len(inputs))
    input_dynamic = [
        tuple((axis == 0 and dynamic_batch) or (axis >= 2 and dynamic_size) for axis in range(x.ndim)) for x in inputs
    ]

    calls, outputs = trace_model(model, inputs)
    output_names = _check_names("output", output_names, len(outputs))
    for record, (scope, kind) in calls:  # every Function must be known before anything is built
        if record.function not in CONVERTERS:
            raise _missing_converter(record.function, scope, kind)
    if any(any(d) for d in input_dynamic):
        # The probe: the same model at another size, so that what depends on it is known exactly.
        probe_calls, _ = trace_model(model, _probe_inputs(inputs, input_dynamic))
        _check_same_calls(calls, probe_calls)
    else:
        probe_calls = calls

    g = GraphBuilder(opset)
    names: dict[int, str] = {}  # id(Tensor) -> value name
    data_names: dict[int, str] = {}  # id(ndarray) -> value name (a detached view of a traced value)
    dynamic: dict[str, tuple] = {}  # value name -> per axis, whether it follows the input's size
    for name, x, dims in zip(input_names, inputs, input_dynamic):
        names[id(x)] = g.reserve(name)
        dynamic[name] = dims
    parameters = {}
    if hasattr(model, "named_parameters"):
        for key, tensor in [*model.named_parameters(), *model.named_buffers()]:
            parameters.setdefault(id(tensor), (key, tensor))
    final_names = {}  # the last record that makes an output writes it under its output name
    for name, out in zip(output_names, outputs):
        g.reserve(name)
        final_names.setdefault(id(out), name)
    # A tensor changed in place is the output of several records (`y = x * 2; y += 1`): the
    # graph's output is the value the last of them makes.
    last_record = {id(record.output): i for i, (record, _) in enumerate(calls)}

    def value_of(t: Tensor, probe: Tensor | None = None) -> str:
        key = id(t)
        if key in names:
            return names[key]
        if key in parameters:
            name = g.initializer(parameters[key][0], t.data)
        elif id(t.data) in data_names:
            name = data_names[id(t.data)]
        else:
            if probe is not None and probe is not t:
                _check_constant(t, probe, g.scope)
            name = g.constant(t.data, hint="constant")
        names[key] = name
        dynamic.setdefault(name, (False,) * t.ndim)
        return name

    for index, ((record, (scope, _kind)), (probe, _)) in enumerate(zip(calls, probe_calls)):
        g.scope = scope
        in_names = [value_of(t, p) for t, p in zip(record.inputs, probe.inputs)]
        out = record.output
        final = final_names.pop(id(out), None) if last_record[id(out)] == index else None
        out_name = final or g.fresh(f"{scope or 'model'}/{record.function.__name__}:0")
        call = Call(
            function=record.function,
            inputs=in_names,
            input_shapes=[tuple(t.shape) for t in record.inputs],
            input_dynamic=[dynamic[n] for n in in_names],
            probe_input_shapes=[tuple(t.shape) for t in probe.inputs],
            output=out_name,
            output_shape=tuple(out.shape),
            output_dynamic=tuple(a != b for a, b in zip(out.shape, probe.output.shape)),
            probe_output_shape=tuple(probe.output.shape),
            dtype=out.dtype,
            attrs=dict(record.attrs),
            scope=scope,
        )
        if record.function not in SHAPE_ATTRIBUTES and not _same(record.attrs, probe.attrs):
            raise call.error(
                f"its attributes {record.attrs} change with the input's size ({probe.attrs} in the probe), "
                "so no single graph serves every size; export with dynamic_batch=False (and dynamic_size=False)"
            )
        CONVERTERS[record.function](g, call)
        dynamic[out_name] = call.output_dynamic
        names[id(out)] = out_name
        data_names.setdefault(id(out.data), out_name)

    g.scope = ""
    graph_outputs = []
    for name, out in zip(output_names, outputs):
        source = value_of(out)
        if source != name:  # an input, a parameter or a constant returned as it is, or an output twice
            g.node("Identity", [source], name)
            dynamic[name] = dynamic[source]
        graph_outputs.append(value_info(name, out.dtype, out.shape, dynamic[name]))
    graph_inputs = [
        value_info(name, x.dtype, x.shape, dynamic[name], _input_dim_names(x.ndim))
        for name, x in zip(input_names, inputs)
    ]

    nodes, initializers = _live(g.nodes, g.initializers, output_names)
    graph = helper.make_graph(nodes, type(model).__name__, graph_inputs, graph_outputs, initializer=initializers)
    opset_ids = [helper.make_opsetid("", opset)]
    proto = helper.make_model(
        graph,
        opset_imports=opset_ids,
        ir_version=helper.find_min_ir_version_for(opset_ids),
        producer_name="kinone-onnx",
        producer_version=__version__,
        doc_string=f"{type(model).__name__} exported by kinone-onnx {__version__}",
    )
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise ExportError(
            f"kinone.onnx.export: the written graph fails onnx.checker (an exporter bug): {error}"
        ) from error
    return proto


def _input_dim_names(ndim: int) -> list | None:
    """Names of an image input's dynamic dims: (batch, channels, height, width)."""
    return [None, None, "height", "width"] if ndim == 4 else None


def _probe_inputs(inputs: tuple, input_dynamic: list) -> tuple:
    """The inputs at another size: one sample more where the batch is dynamic; where the size
    is, 2·size for dim 2, 2·size + 1 for dim 3, ... (unequal, so that a square example cannot
    pass the width off as the height); and new values drawn like the example's (so that a
    tensor the model computes from its input without a Function shows up as changing)."""
    rng = np.random.default_rng(12345)
    probes = []
    for x, dims in zip(inputs, input_dynamic):
        shape = tuple(
            (size + 1 if axis == 0 else 2 * size + axis - 2) if dyn else size
            for axis, (size, dyn) in enumerate(zip(x.shape, dims))
        )
        probes.append(Tensor(draw_like(x.data, shape, rng)))
    return tuple(probes)


def draw_like(x: np.ndarray, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """New values of `shape` with x's dtype, mean and spread (x's own values, repeated, when
    x is not floating)."""
    if x.dtype.kind != "f":
        return np.resize(x, shape)
    return (rng.standard_normal(shape) * (float(x.std()) or 1.0) + float(x.mean())).astype(x.dtype)


def _check_same_calls(calls: list, probe_calls: list) -> None:
    """The probe must make the same Function calls in the same order (no control flow on size)."""
    first = [r.function.__name__ for r, _ in calls]
    second = [r.function.__name__ for r, _ in probe_calls]
    if first != second:
        at = next((i for i, (a, b) in enumerate(zip(first, second)) if a != b), min(len(first), len(second)))
        raise ExportError(
            f"kinone.onnx.export: at another input size the model makes other Function calls (call {at}: "
            f"{first[at] if at < len(first) else 'none'} at the example's size, {second[at] if at < len(second) else 'none'} "
            "at the other), so its graph depends on the size; export with dynamic_batch=False (and dynamic_size=False)"
        )


def _check_constant(t: Tensor, probe: Tensor, scope: str) -> None:
    """A tensor made without a Function must be the same at every input size: a constant."""
    where = f"module {scope!r}" if scope else "the model's own forward"
    if t.shape != probe.shape:
        raise ExportError(
            f"kinone.onnx.export: a tensor made without a Function in {where} has shape {tuple(t.shape)} here and "
            f"{tuple(probe.shape)} at another input size: it was built from the input outside the traced ops (from its shape, "
            "as zeros(x.shape[0], ...), or its values, as a comparison x > 0), which the graph would freeze; build it with "
            "tensor ops, or export with dynamic_batch=False"
        )
    if not np.array_equal(t.data, probe.data, equal_nan=t.data.dtype.kind in "fc"):
        raise ExportError(
            f"kinone.onnx.export: a tensor of shape {tuple(t.shape)} made without a Function in {where} changes with "
            "the input's values: it was computed from the input outside the traced ops (a comparison such as x > 0, "
            "or NumPy on .data), which the graph would freeze"
        )


def _same(a, b) -> bool:
    """Equality of attribute values that may hold arrays (index arrays of GetItem)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape and bool(np.all(a == b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _live(nodes: list, initializers: list, outputs: list[str]) -> tuple[list, list]:
    """The nodes and initializers the outputs depend on, in their order."""
    needed = set(outputs)
    kept = []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    kept.reverse()
    return kept, [t for t in initializers if t.name in needed]


def export(
    model,
    example_input,
    path,
    opset: int = DEFAULT_OPSET,
    input_names=("input",),
    output_names=("output",),
    dynamic_batch: bool = True,
    dynamic_size: bool = False,
) -> onnx.ModelProto:
    """Write `model` as an ONNX file at `path` and return the `ModelProto`.

    example_input: a Tensor or array (or a tuple of them for several inputs) to trace with.
    opset: the default-domain opset (17: loads in onnxruntime releases of the last years; any
    from 13 to `max_opset()`); the IR version is the oldest that carries it (8 for 17).
    dynamic_batch: dim 0 of every input (and of what follows from it) is the symbolic "batch",
    so the model runs at any batch size. dynamic_size: likewise every dim after the channels
    (an image's "height" and "width"). Either makes export trace the model a second time at
    another size, so that what depends on the size is known exactly; a model whose graph would
    not hold at other sizes is refused with the reason. Initializer names are the model's
    state-dict keys. A Function without a converter raises `ExportError` naming it and its
    module; nothing is written then, nor when the checker rejects the graph.
    """
    proto = build_model(model, example_input, opset, input_names, output_names, dynamic_batch, dynamic_size)
    data = proto.SerializeToString()
    atomic_write(Path(path), lambda f: f.write(data))
    return proto
