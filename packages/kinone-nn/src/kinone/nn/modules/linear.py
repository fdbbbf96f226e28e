"""`torch.nn.modules.linear`: Kinone's classes under the file name PyTorch gives them (aliases, not copies)."""

from ..layers.attention import NonDynamicallyQuantizableLinear
from ..layers.linear import Identity, Linear

__all__ = ["Identity", "Linear", "NonDynamicallyQuantizableLinear"]
