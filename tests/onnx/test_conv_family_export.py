"""Export forms of the conv family that the converter cases do not cover: circular padding
(ONNX Pad mode "wrap", opset 19 and later) and pixel_shuffle of a 3-D input."""

from __future__ import annotations

import numpy as np
import pytest

from kinone import nn
from kinone import onnx as kinone_onnx
from kinone.autograd import Tensor
from kinone.nn import functional as F
from kinone.onnx import ExportError

X = Tensor(np.random.default_rng(2).standard_normal((2, 3, 5, 6)).astype(np.float32))


def test_circular_padding_needs_opset_19(tmp_path):
    with pytest.raises(ExportError, match=r"Pad called in .*circular padding needs ONNX opset 19"):
        kinone_onnx.export(lambda x: F.pad(x, (1, 2, 2, 1), mode="circular"), X, tmp_path / "m.onnx")


def test_circular_padding_exports_as_wrap_at_opset_19(tmp_path):
    model = nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular")
    kinone_onnx.export(model, X, tmp_path / "m.onnx", opset=19)
    assert kinone_onnx.verify(model, tmp_path / "m.onnx", X).batch_sizes == [2, 3]


def test_pixel_shuffle_of_an_unbatched_input_is_refused(tmp_path):
    with pytest.raises(ExportError, match=r"pixel_shuffle of a 3-D input"):
        kinone_onnx.export(
            lambda x: F.pixel_shuffle(x[0], 1), Tensor(np.zeros((2, 4, 2, 2), np.float32)), tmp_path / "m.onnx"
        )
