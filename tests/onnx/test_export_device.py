"""A model on a GPU exports and verifies: it is traced on the CPU and put back on its device."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from kinone import models
from kinone import onnx as kinone_onnx
from kinone.autograd import Tensor, backend, manual_seed


def test_a_model_on_the_standin_gpu_exports_verifies_and_stays_on_its_device(tmp_path):
    pytest.importorskip("onnxruntime")
    manual_seed(0)
    model = models.get_model("resnet18", num_classes=3, in_channels=1)
    x = np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32)
    with backend.use_standin_cuda():
        model.cuda()
        example = Tensor(x).cuda()
        kinone_onnx.export(model, example, tmp_path / "m.onnx")
        kinone_onnx.verify(model, tmp_path / "m.onnx", example)
        assert all(p.device.type == "cuda" for p in model.parameters())
        assert all(b.device.type == "cuda" for b in model.buffers())
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")), full_check=True)
