"""Files written by `torch.onnx.export` load into Kinone and give torch's outputs. The default
(dynamo) exporter writes Reshape's shape as an int64 initializer; it needs onnxscript, and
the test is skipped without it. The TorchScript exporter (`dynamo=False`) writes Constants."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest

from kinone import onnx as kinone_onnx
from kinone.autograd import Tensor, no_grad

torch = pytest.importorskip("torch")


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.conv2 = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(6 * 2 * 2, 8)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x):
        h = torch.nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        h = torch.relu(self.conv2(h))
        h = h.reshape(-1, 6 * 2 * 2)  # an int64 shape
        h = torch.relu(self.fc(h)).reshape(-1, 2, 4)  # and another
        return self.head(torch.flatten(h, 1))


def _export(tmp_path, dynamo: bool):
    torch.manual_seed(0)
    model = SmallCNN()
    with torch.no_grad():  # non-trivial running statistics, so that folding or not matters
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    model.eval()
    x = torch.randn(2, 1, 8, 8)
    path = tmp_path / "torch.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), input_names=["x"], output_names=["y"], dynamo=dynamo)
    with torch.no_grad():
        want = model(x).numpy()
    return path, x.numpy(), want


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
def test_a_torch_exported_cnn_loads_and_matches_torch(tmp_path, dynamo):
    if dynamo:
        pytest.importorskip("onnxscript")
    path, x, want = _export(tmp_path, dynamo)
    proto = onnx.load(str(path))
    integer_initializers = [t.name for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT64]
    if dynamo:
        assert integer_initializers, "the dynamo exporter no longer writes int64 initializers: this test proves less"
    model = kinone_onnx.load(path)
    assert model.training is False
    with no_grad():
        got = model(Tensor(x)).data
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # The integer initializers are constants of the graph, not parameters to train.
    buffers = dict(model.named_buffers())
    assert all(model.initializer_keys[name] in buffers for name in integer_initializers)
    assert all(p.dtype == np.float32 for p in model.parameters())
