"""`torch.nn.modules.module`: Kinone's classes under the file name PyTorch gives them (aliases, not copies)."""

from ..module import Module

__all__ = ["Module"]
