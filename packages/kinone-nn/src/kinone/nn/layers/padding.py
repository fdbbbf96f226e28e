"""Padding layers (F.pad as a layer): ZeroPad2d, ConstantPad2d, ReflectionPad2d, ReplicationPad2d."""

from __future__ import annotations

from .. import functional as F
from ..functional.arguments import ntuple
from ..module import Module


class _Pad2d(Module):
    """Pads the last two dims by (left, right, top, bottom); an int pads all four sides."""

    mode = "constant"

    def __init__(self, padding, value: float = 0.0):
        super().__init__()
        self.padding = ntuple(padding, 4, "padding", type(self).__name__)
        self.value = value

    def forward(self, x):
        value = self.value if self.mode == "constant" else None
        return F.pad(x, self.padding, self.mode, value)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ConstantPad2d(_Pad2d):
    """Pads with `value`."""

    def __init__(self, padding, value: float):
        super().__init__(padding, value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ZeroPad2d(_Pad2d):
    """Pads with zeros."""

    def __init__(self, padding):
        super().__init__(padding, 0.0)


class ReflectionPad2d(_Pad2d):
    """Pads with the reflection of the input, the edge not repeated."""

    mode = "reflect"


class ReplicationPad2d(_Pad2d):
    """Pads by repeating the edge."""

    mode = "replicate"
