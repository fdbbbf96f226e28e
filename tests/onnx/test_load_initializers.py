"""What `kinone.onnx.load` makes of initializers from any exporter: integer and boolean ones
are buffers (constants of the graph, not trainable), names that clash with a Module's own
attributes still load (under a free name, listed in `initializer_keys`), and the loaded model
starts in eval mode."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from kinone import nn
from kinone import onnx as kinone_onnx
from kinone.autograd import Tensor, no_grad


def _model(nodes, inputs, outputs, initializers) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _float_in(name="x", shape=("n", 2)):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


# ------------------------------------------------------------------ non-float initializers
def test_int64_int32_and_bool_initializers_are_buffers_the_graph_uses():
    shape = np.array([-1, 6], np.int64)
    offsets = np.arange(6, dtype=np.int32)
    keep = np.array([True, False] * 3)
    proto = _model(
        [
            helper.make_node("Reshape", ["x", "shape"], ["flat"]),
            helper.make_node("Cast", ["offsets"], ["offsets_f"], to=TensorProto.FLOAT),
            helper.make_node("Add", ["flat", "offsets_f"], ["shifted"]),
            helper.make_node("Mul", ["shifted", "scale"], ["scaled"]),
            helper.make_node("Where", ["keep", "scaled", "flat"], ["y"]),
        ],
        [_float_in(shape=("n", 2, 3))],
        [_float_in("y", ("n", 6))],
        [
            numpy_helper.from_array(shape, "shape"),
            numpy_helper.from_array(offsets, "offsets"),
            numpy_helper.from_array(keep, "keep"),
            numpy_helper.from_array(np.array(2.0, np.float32), "scale"),
        ],
    )
    model = kinone_onnx.load(proto)
    x = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    flat = x.reshape(-1, 6)
    np.testing.assert_allclose(model(Tensor(x)).data, np.where(keep, (flat + offsets) * 2, flat))
    assert [k for k, _ in model.named_parameters()] == ["scale"]
    buffers = dict(model.named_buffers())
    assert {k: b.dtype for k, b in buffers.items()} == {"shape": np.int64, "offsets": np.int32, "keep": np.bool_}
    assert not any(b.requires_grad for b in buffers.values())
    np.testing.assert_array_equal(model.state_dict()["shape"], shape)
    model.to(np.float64)  # casts the floating parameters only: the shape stays int64
    assert model.shape.dtype == np.int64 and model.scale.dtype == np.float64


def test_an_initializer_kinone_cannot_hold_is_named_with_its_dtype():
    proto = _model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [_float_in()],
        [_float_in("y")],
        [helper.make_tensor("labels", TensorProto.STRING, [2], [b"cat", b"dog"])],
    )
    with pytest.raises(
        ValueError,
        match=r"^kinone\.onnx\.load: initializer 'labels' has dtype STRING; "
        r"Kinone holds float16/32/64 \(parameters\), integer and bool \(buffers\)$",
    ):
        kinone_onnx.load(proto)


# ------------------------------------------------------------------ names that clash
def _sum_of(names):
    """y = x + every initializer (each a (2,) float vector of a distinct value)."""
    nodes, last = [], "x"
    for i, name in enumerate(names):
        nodes.append(helper.make_node("Add", [last, name], [f"s{i}"]))
        last = f"s{i}"
    nodes.append(helper.make_node("Identity", [last], ["y"]))
    values = {name: np.full(2, 10.0**i, np.float32) for i, name in enumerate(names)}
    proto = _model(nodes, [_float_in()], [_float_in("y")], [numpy_helper.from_array(v, n) for n, v in values.items()])
    return proto, values


CLASHES = {
    "module-internals": ["_parameters", "_modules", "_buffers", "__dict__"],
    "module-methods": ["forward", "eval", "state_dict", "parameters"],
    "module-flags": ["training", "input_names", "initializer_keys"],
    "leaf-then-path": ["w", "w.x", "w.y.z"],
    "path-then-leaf": ["w.x", "w", "w_"],
    "a-path-through-a-method": ["forward.weight", "training.bias", "_parameters.w"],
}


@pytest.mark.parametrize("case", list(CLASHES), ids=list(CLASHES))
def test_initializer_names_that_clash_with_module_attributes_load(case):
    proto, values = _sum_of(CLASHES[case])
    model = kinone_onnx.load(proto)
    x = np.ones((3, 2), np.float32)
    with no_grad():
        np.testing.assert_allclose(model(Tensor(x)).data, x + sum(values.values()), rtol=1e-6)
    # Every initializer has its own state-dict key, holding its own array, and is trainable.
    keys = model.initializer_keys
    assert set(keys) == set(values) and len(set(keys.values())) == len(values)
    state = model.state_dict()
    assert set(state) == set(keys.values())
    for name, value in values.items():
        np.testing.assert_array_equal(state[keys[name]], value)
    assert len(list(model.parameters())) == len(values)
    # The Module still works as one.
    assert model.training is False and callable(model.forward) and isinstance(model._parameters, dict)
    model.train()
    assert model.training is True
    model.load_state_dict({k: v * 0 for k, v in state.items()})
    with no_grad():
        np.testing.assert_allclose(model(Tensor(x)).data, x)


def test_names_that_need_no_change_keep_their_state_dict_keys():
    proto, values = _sum_of(["layer1.0.conv1.weight", "onnx::Conv_18", "/fc/Constant_output_0", "fc.bias"])
    assert kinone_onnx.load(proto).initializer_keys == {name: name for name in values}


def test_a_renamed_initializer_takes_the_first_free_name():
    proto, _ = _sum_of(["w", "w.x", "w_", "forward"])
    assert kinone_onnx.load(proto).initializer_keys == {"w": "w", "w.x": "w__.x", "w_": "w_", "forward": "forward_"}


# ------------------------------------------------------------------ eval mode
def test_a_loaded_model_starts_in_eval_mode_and_keeps_its_running_statistics(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU())
    rng = np.random.default_rng(0)
    model.train()
    with no_grad():
        model(Tensor(rng.standard_normal((4, 1, 5, 5)).astype(np.float32) * 3 + 1))  # non-trivial statistics
    model.eval()
    x = Tensor(rng.standard_normal((2, 1, 5, 5)).astype(np.float32))
    kinone_onnx.export(model, x, tmp_path / "m.onnx")
    loaded = kinone_onnx.load(tmp_path / "m.onnx")
    assert loaded.training is False and not any(m.training for m in loaded.modules())
    before = {k: v.copy() for k, v in loaded.state_dict().items()}
    with no_grad():
        out = loaded(x)
    for key, value in loaded.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    with no_grad():
        np.testing.assert_allclose(out.data, model(x).data, rtol=1e-5, atol=1e-6)
    loaded.train()  # fine-tuning: batch statistics, running statistics updated
    with no_grad():
        loaded(x)
    assert not np.array_equal(loaded.state_dict()["1.running_mean"], before["1.running_mean"])
