"""`kinone.onnx.load` reads external data itself, and only from regular files inside the
model's folder: an absolute location, a `..` escape, a symbolic link anywhere on the way or a
range past the end of the file is refused with one line naming the tensor, the location and
why, before a byte of it is read."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from kinone import nn
from kinone import onnx as kinone_onnx
from kinone.autograd import Tensor, no_grad

W = np.arange(12, dtype=np.float32).reshape(3, 4) / 10


def _matmul_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        initializer=[numpy_helper.from_array(W, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _point_w_at(folder, location: str, length: int | None = W.nbytes, offset: int = 0):
    """model.onnx in `folder` whose initializer 'w' says its bytes are at `location`."""
    model = _matmul_model()
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    entries = {"location": location, "offset": str(offset)}
    if length is not None:
        entries["length"] = str(length)
    for key, value in entries.items():
        tensor.external_data.add(key=key, value=value)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    return folder / "model.onnx"


def test_a_model_saved_with_external_data_loads_with_the_same_outputs(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 5 * 5, 2))
    x = Tensor(np.random.default_rng(0).standard_normal((2, 1, 5, 5)).astype(np.float32))
    kinone_onnx.export(model, x, tmp_path / "inline.onnx")
    proto = onnx.load(str(tmp_path / "inline.onnx"))
    (tmp_path / "ext").mkdir()
    onnx.save_model(
        proto,
        str(tmp_path / "ext" / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    stored = onnx.load(str(tmp_path / "ext" / "model.onnx"), load_external_data=False)
    assert all(t.data_location == TensorProto.EXTERNAL for t in stored.graph.initializer)
    loaded = kinone_onnx.load(tmp_path / "ext" / "model.onnx")
    with no_grad():
        want = model.eval()(x).data
        np.testing.assert_allclose(loaded(x).data, want, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(kinone_onnx.load(tmp_path / "inline.onnx")(x).data, loaded(x).data)
    assert set(loaded.state_dict()) == set(model.state_dict())


def test_one_file_per_tensor_in_a_subfolder_loads(tmp_path):
    path = _point_w_at(tmp_path / "m", "data/w.bin", offset=8)
    (tmp_path / "m" / "data").mkdir()
    (tmp_path / "m" / "data" / "w.bin").write_bytes(b"\0" * 8 + W.tobytes())
    with no_grad():
        np.testing.assert_allclose(
            kinone_onnx.load(path)(np.ones((1, 3), np.float32)).data, W.sum(0, keepdims=True), rtol=1e-6
        )


def test_a_symlink_to_etc_passwd_is_refused(tmp_path):
    path = _point_w_at(tmp_path, "w.bin", length=None)
    os.symlink("/etc/passwd", tmp_path / "w.bin")
    with pytest.raises(
        ValueError,
        match=r"^kinone\.onnx\.load: initializer 'w': external data location 'w\.bin': "
        r"'w\.bin' is a symbolic link",
    ):
        kinone_onnx.load(path)


def test_a_symlinked_folder_on_the_way_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "w.bin").write_bytes(W.tobytes())
    path = _point_w_at(tmp_path / "m", "data/w.bin")
    os.symlink(tmp_path / "elsewhere", tmp_path / "m" / "data")
    with pytest.raises(
        ValueError, match=r"initializer 'w': external data location 'data/w\.bin': 'data' is a symbolic link"
    ):
        kinone_onnx.load(path)


def test_a_dotdot_escape_is_refused(tmp_path):
    (tmp_path / "outside.bin").write_bytes(W.tobytes())
    path = _point_w_at(tmp_path / "m", "../outside.bin")
    with pytest.raises(
        ValueError,
        match=r"initializer 'w': external data location '\.\./outside\.bin': "
        r"'\.\.' leaves the model's folder",
    ):
        kinone_onnx.load(path)


def test_an_absolute_location_is_refused(tmp_path):
    (tmp_path / "w.bin").write_bytes(W.tobytes())
    path = _point_w_at(tmp_path / "m", str(tmp_path / "w.bin"))
    with pytest.raises(ValueError, match=r"initializer 'w': external data location '/.*w\.bin': an absolute path"):
        kinone_onnx.load(path)


@pytest.mark.parametrize(
    "offset, length, why",
    [
        (0, W.nbytes + 4, r"bytes 0\.\.52 of a 48-byte file"),
        (60, None, r"offset 60 is past the end of a 48-byte file"),
        (4, None, r"holds 44 bytes, a 3x4 FLOAT tensor needs 48"),
    ],
)
def test_a_range_past_the_file_or_of_the_wrong_size_is_refused(tmp_path, offset, length, why):
    (tmp_path / "w.bin").write_bytes(W.tobytes())
    path = _point_w_at(tmp_path, "w.bin", length=length, offset=offset)
    with pytest.raises(ValueError, match=r"initializer 'w': external data location 'w\.bin': " + why):
        kinone_onnx.load(path)


def test_a_missing_file_or_a_folder_is_named(tmp_path):
    path = _point_w_at(tmp_path, "w.bin")
    with pytest.raises(ValueError, match=r"initializer 'w': external data location 'w\.bin': no such file in "):
        kinone_onnx.load(path)
    (tmp_path / "w.bin").mkdir()
    with pytest.raises(ValueError, match=r"initializer 'w': external data location 'w\.bin': not a regular file"):
        kinone_onnx.load(path)


def test_a_model_proto_with_external_data_is_refused_not_read_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.bin").write_bytes(W.tobytes())
    proto = onnx.load(str(_point_w_at(tmp_path / "m", "w.bin")), load_external_data=False)
    with pytest.raises(
        ValueError,
        match=r"initializer 'w': external data location 'w\.bin': a ModelProto has no folder; "
        r"load the file by its path",
    ):
        kinone_onnx.load(proto)


def test_a_constant_nodes_tensor_kept_outside_is_read_and_checked_the_same_way(tmp_path):
    model = _matmul_model()
    bias = numpy_helper.from_array(np.array([1.0, 2.0, 3.0, 4.0], np.float32), "bias")
    model.graph.node[0].output[0] = "xw"
    model.graph.node.extend(
        [
            helper.make_node("Constant", [], ["b"], name="const_b", value=bias),
            helper.make_node("Add", ["xw", "b"], ["y"]),
        ]
    )
    (tmp_path / "ok").mkdir()
    onnx.save_model(
        model,
        str(tmp_path / "ok" / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="data.bin",
        size_threshold=0,
        convert_attribute=True,
    )
    stored = onnx.load(str(tmp_path / "ok" / "model.onnx"), load_external_data=False)
    assert stored.graph.node[1].attribute[0].t.data_location == TensorProto.EXTERNAL
    with no_grad():
        np.testing.assert_allclose(
            kinone_onnx.load(tmp_path / "ok" / "model.onnx")(np.ones((1, 3), np.float32)).data,
            W.sum(0, keepdims=True) + [1, 2, 3, 4],
            rtol=1e-6,
        )
    stored.graph.node[1].attribute[0].t.external_data[0].value = "../ok/data.bin"
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.onnx").write_bytes(stored.SerializeToString())
    with pytest.raises(
        ValueError,
        match=r"tensor 'bias' of node 'const_b': external data location '\.\./ok/data\.bin': "
        r"'\.\.' leaves the model's folder",
    ):
        kinone_onnx.load(tmp_path / "bad" / "model.onnx")


def test_where_the_os_cannot_open_relative_to_a_folder_every_step_is_still_checked(tmp_path, monkeypatch):
    """Windows has no `dir_fd` nor `O_NOFOLLOW`: the same refusals, from `lstat` on each step."""
    monkeypatch.setattr(os, "supports_dir_fd", set())
    (tmp_path / "m" / "data").mkdir(parents=True)
    (tmp_path / "m" / "data" / "w.bin").write_bytes(W.tobytes())
    path = _point_w_at(tmp_path / "m", "data/w.bin")
    with no_grad():
        np.testing.assert_allclose(
            kinone_onnx.load(path)(np.ones((1, 3), np.float32)).data, W.sum(0, keepdims=True), rtol=1e-6
        )
    os.symlink("/etc/passwd", tmp_path / "m" / "data" / "passwd.bin")
    path = _point_w_at(tmp_path / "m", "data/passwd.bin", length=None)
    with pytest.raises(
        ValueError,
        match=r"initializer 'w': external data location 'data/passwd\.bin': "
        r"'data/passwd\.bin' is a symbolic link",
    ):
        kinone_onnx.load(path)
