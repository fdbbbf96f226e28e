"""`torch.nn.modules.flatten`: Kinone's classes under the file name PyTorch gives them (aliases, not copies)."""

from ..layers.linear import Flatten

__all__ = ["Flatten"]
