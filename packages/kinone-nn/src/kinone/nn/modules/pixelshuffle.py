"""`torch.nn.modules.pixelshuffle`: Kinone's classes under the file name PyTorch gives them (aliases, not copies)."""

from ..layers.upsample import PixelShuffle

__all__ = ["PixelShuffle"]
