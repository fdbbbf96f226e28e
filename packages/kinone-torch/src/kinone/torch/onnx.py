"""`torch.onnx`: importable, so a script that imports it runs; `export` is kinone-onnx's job.

kinone-torch depends on kinone-nn and kinone-data only (the package map forbids it to import
kinone.onnx), so `torch.onnx.export` refuses in one line naming the call that does it.
"""

from __future__ import annotations


def export(model, args=(), f=None, *unused, **kwargs):
    raise NotImplementedError(
        "kinone.torch.onnx.export: kinone-torch does not export ONNX; call kinone.onnx.export(model, example_input, "
        f"{f!r}) from the kinone-onnx package (pip install kinone-onnx)"
    )


def is_in_onnx_export() -> bool:
    return False
