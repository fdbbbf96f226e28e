"""`torch.nn.modules.dropout`: Kinone's classes under the file name PyTorch gives them (aliases, not copies)."""

from ..layers.dropout import Dropout, Dropout2d

__all__ = ["Dropout", "Dropout2d"]
