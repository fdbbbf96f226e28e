"""What the exporter refuses, and how it says so: nothing is written then."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from kinone import nn
from kinone import onnx as kinone_onnx
from kinone.autograd import Tensor, where
from kinone.nn import functional as F
from kinone.onnx import ExportError


class WithLoss(nn.Module):
    """A model whose forward computes a loss: no ONNX form."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
        self.head = nn.MSELoss()

    def forward(self, x):
        return self.head(self.body(x), Tensor(np.zeros((x.shape[0], 3), np.float32)))


def test_unsupported_function_names_itself_and_its_module(tmp_path):
    path = tmp_path / "model.onnx"
    with pytest.raises(
        ExportError,
        match=r"no ONNX converter for kinone\.nn\.functional\.loss\.MSE, called in module 'head' \(MSELoss\)",
    ):
        kinone_onnx.export(WithLoss(), Tensor(np.ones((2, 4), np.float32)), path)
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_an_existing_file_is_left_whole_when_export_fails(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"previous")
    with pytest.raises(ExportError):
        kinone_onnx.export(WithLoss(), Tensor(np.ones((2, 4), np.float32)), path)
    assert path.read_bytes() == b"previous"


def test_indexing_with_arrays_is_refused_with_the_index(tmp_path):
    class Gather(nn.Module):
        def forward(self, x):
            return x[:, np.array([0, 2])]

    with pytest.raises(ExportError, match=r"GetItem called in the model's own forward.*only basic indexing"):
        kinone_onnx.export(Gather(), Tensor(np.ones((2, 4), np.float32)), tmp_path / "m.onnx")


def test_a_reshape_that_merges_the_batch_is_written_with_minus_one(tmp_path):
    def merge_batch(x):
        return x.reshape(-1) * 2

    x = Tensor(np.ones((2, 3), np.float32))
    kinone_onnx.export(merge_batch, x, tmp_path / "m.onnx")
    assert kinone_onnx.verify(merge_batch, tmp_path / "m.onnx", x).batch_sizes == [2, 3]


def test_a_reshape_with_two_new_dynamic_dims_is_refused(tmp_path):
    def merge(x):
        return x.reshape(x.shape[0], -1, x.shape[3])  # (N, C·H, W): two dims follow the size anew

    x = Tensor(np.ones((2, 3, 4, 4), np.float32))  # square: the probe's unequal sides tell W from H
    with pytest.raises(
        ExportError,
        match=r"Reshape called in .*: reshape from \(2, 3, 4, 4\) to \(2, 12, 4\) .* ONNX Reshape can infer only one",
    ):
        kinone_onnx.export(merge, x, tmp_path / "m.onnx", dynamic_size=True)
    kinone_onnx.export(merge, x, tmp_path / "m.onnx")  # the batch alone: dim 0 copied
    assert kinone_onnx.verify(merge, tmp_path / "m.onnx", x).batch_sizes == [2, 3]


@pytest.mark.parametrize("opset", [12, 10_000, 17.0, True])
def test_opset_out_of_range(opset, tmp_path):
    with pytest.raises(ExportError, match="opset must be an int from 13"):
        kinone_onnx.export(nn.Linear(2, 2), Tensor(np.ones((2, 2), np.float32)), tmp_path / "m.onnx", opset=opset)


def test_names_must_match_the_inputs_and_outputs(tmp_path):
    with pytest.raises(ExportError, match=r"1 output\(s\) but 2 output_names"):
        kinone_onnx.export(
            nn.Linear(2, 2), Tensor(np.ones((2, 2), np.float32)), tmp_path / "m.onnx", output_names=("a", "b")
        )


def test_dropout_in_training_mode_is_not_exported_but_eval_is(tmp_path):
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    kinone_onnx.export(model, Tensor(np.ones((2, 4), np.float32)), tmp_path / "m.onnx")  # export uses eval mode

    def always_dropout(x):
        return F.dropout(x, 0.5, training=True)

    with pytest.raises(ExportError, match="Dropout.*dropout is the identity in eval mode"):
        kinone_onnx.export(always_dropout, Tensor(np.ones((2, 4), np.float32)), tmp_path / "d.onnx")


def test_verify_reports_the_worst_element(tmp_path):
    model = nn.Linear(3, 2)
    x = Tensor(np.ones((2, 3), np.float32))
    kinone_onnx.export(model, x, tmp_path / "m.onnx")
    model.bias.data[1] += 0.5  # the file now differs from the model
    with pytest.raises(
        kinone_onnx.VerificationError, match=r"element \(0, 1\) is [-.\d]+ in onnxruntime but [-.\d]+ in Kinone"
    ):
        kinone_onnx.verify(model, tmp_path / "m.onnx", x)


def test_several_inputs_and_outputs(tmp_path):
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 2), nn.Linear(5, 2)

        def forward(self, x, y):
            joint = self.a(x) + self.b(y)
            return joint.softmax(1), x  # an input returned as it is

    x, y = Tensor(np.ones((2, 3), np.float32)), Tensor(np.ones((2, 5), np.float32))
    model = TwoHeads()
    proto = kinone_onnx.export(model, (x, y), tmp_path / "m.onnx", input_names=("x", "y"), output_names=("p", "x_out"))
    assert [o.name for o in proto.graph.output] == ["p", "x_out"]
    assert {t.name for t in proto.graph.initializer} == {"a.weight", "a.bias", "b.weight", "b.bias"}
    report = kinone_onnx.verify(model, tmp_path / "m.onnx", (x, y))
    assert report.batch_sizes == [2, 3]


def _cancelling_linear():
    """A linear layer whose outputs are small differences of terms ~1e5: float32 rounding, in
    whatever order each library sums, dominates them."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 2048)).astype(np.float32) * 1e3
    model = nn.Linear(4096, 3)
    model.weight.data[...] = np.concatenate([w, -w], axis=1)
    model.bias.data[...] = 0
    half = rng.standard_normal((2, 2048)).astype(np.float32)
    x = Tensor(np.concatenate([half, half + rng.standard_normal((2, 2048)).astype(np.float32) * 1e-3], axis=1))
    return model, x


def test_verify_tells_float32_rounding_from_a_wrong_export(tmp_path):
    model, x = _cancelling_linear()
    kinone_onnx.export(model, x, tmp_path / "m.onnx")
    weights = [p.data for p in model.parameters()]
    with pytest.raises(
        kinone_onnx.VerificationError, match="this is float32 rounding .* not the export; pass a larger atol"
    ):
        kinone_onnx.verify(model, tmp_path / "m.onnx", x)
    assert all(p.data is w and p.dtype == np.float32 for p, w in zip(model.parameters(), weights))  # put back as it was
    assert kinone_onnx.verify(model, tmp_path / "m.onnx", x, atol=0.5).max_abs_diff > 1e-3

    model.bias.data[0] += 1.0  # now the file really differs from the model
    with pytest.raises(
        kinone_onnx.VerificationError, match="onnxruntime is much further from it .* the export is likely wrong"
    ):
        kinone_onnx.verify(model, tmp_path / "m.onnx", x)


def test_a_tensor_built_from_the_input_shape_is_refused(tmp_path):
    class AddsZeros(nn.Module):
        def forward(self, x):
            return x + Tensor(np.zeros((x.shape[0], 3), np.float32))  # built from the input's shape

    x = Tensor(np.ones((2, 3), np.float32))
    with pytest.raises(
        ExportError,
        match=r"has shape \(2, 3\) here and \(3, 3\) at another input size: it was built from the input outside",
    ):
        kinone_onnx.export(AddsZeros(), x, tmp_path / "m.onnx")
    kinone_onnx.export(AddsZeros(), x, tmp_path / "m.onnx", dynamic_batch=False)  # fine at one batch size
    assert kinone_onnx.verify(AddsZeros(), tmp_path / "m.onnx", x).batch_sizes == [2]


def test_a_mask_computed_outside_the_traced_ops_is_refused(tmp_path):
    def masked(x):
        return where(x.sum(0) > 0, x, 0.0)  # the comparison is not a Function: its mask would be frozen

    with pytest.raises(
        ExportError, match=r"changes with the input's values: it was computed from the input outside the traced ops"
    ):
        kinone_onnx.export(
            masked, Tensor(np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)), tmp_path / "m.onnx"
        )


def test_attributes_that_change_with_the_size_are_refused(tmp_path):
    def middle_column(x):
        return x[:, x.shape[1] // 2]  # an index computed from the size

    x = Tensor(np.ones((2, 3, 8, 8), np.float32))
    kinone_onnx.export(middle_column, x, tmp_path / "m.onnx")  # the batch does not change the index
    with pytest.raises(ExportError, match="GetItem called in .*its attributes .* change with the input's size"):
        kinone_onnx.export(lambda x: x[:, :, x.shape[2] // 2], x, tmp_path / "m.onnx", dynamic_size=True)


def test_control_flow_on_the_size_is_refused(tmp_path):
    def branches(x):
        return x.relu() if x.shape[0] == 2 else x.tanh()

    with pytest.raises(ExportError, match=r"at another input size the model makes other Function calls \(call 0: ReLU"):
        kinone_onnx.export(branches, Tensor(np.ones((2, 3), np.float32)), tmp_path / "m.onnx")


def test_verify_can_accept_float32_rounding_but_never_a_wrong_export(tmp_path):
    model, x = _cancelling_linear()
    kinone_onnx.export(model, x, tmp_path / "m.onnx")
    report = kinone_onnx.verify(model, tmp_path / "m.onnx", x, accept_float32_rounding=True)
    assert report.max_abs_diff > 1e-3 and report.float32_rounding
    assert "only by float32 rounding" in str(report)
    model.bias.data[0] += 1.0
    with pytest.raises(kinone_onnx.VerificationError, match="the export is likely wrong"):
        kinone_onnx.verify(model, tmp_path / "m.onnx", x, accept_float32_rounding=True)


def test_an_output_changed_in_place_last_is_written_once(tmp_path):
    """`y = x * 2; y += 1; return y`: the tensor is the output of two records; the graph output
    is the last one's value (it was the first's, and the checker refused the name twice)."""

    class InPlaceLast(nn.Module):
        def forward(self, x):
            y = x * 2
            y += 1
            return y

    x = Tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    kinone_onnx.export(InPlaceLast(), x, tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")), full_check=True)
    report = kinone_onnx.verify(InPlaceLast(), tmp_path / "m.onnx", x)
    assert report.max_abs_diff == 0
