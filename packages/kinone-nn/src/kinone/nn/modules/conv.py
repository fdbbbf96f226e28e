"""`torch.nn.modules.conv`: Kinone's classes under the file name PyTorch gives them (aliases, not copies)."""

from ..layers.conv import Conv1d, Conv2d, ConvTranspose2d

__all__ = ["Conv1d", "Conv2d", "ConvTranspose2d"]
