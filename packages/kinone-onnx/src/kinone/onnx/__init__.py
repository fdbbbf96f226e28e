"""kinone.onnx: export Kinone models to ONNX, check them against onnxruntime, load them back.

from kinone import onnx as kinone_onnx
kinone_onnx.export(model, example_input, "model.onnx")        # opset 17, dynamic batch
report = kinone_onnx.verify(model, "model.onnx", example_input)  # needs onnxruntime
print(report.max_abs_diff)
again = kinone_onnx.load("model.onnx")                         # a Module: run it, fine-tune it
"""

from .__about__ import __version__
from .export import DEFAULT_OPSET, MIN_OPSET, build_model, export, max_opset, trace_model
from .graph import ExportError
from .load import OnnxModule, load
from .registry import CONVERTERS, converter, supported_functions
from .verify import VerificationError, VerifyReport, verify

__all__ = [
    "CONVERTERS",
    "DEFAULT_OPSET",
    "MIN_OPSET",
    "ExportError",
    "OnnxModule",
    "VerificationError",
    "VerifyReport",
    "__version__",
    "build_model",
    "converter",
    "export",
    "load",
    "max_opset",
    "supported_functions",
    "trace_model",
    "verify",
]
