"""`torch.nn.modules.pooling`: Kinone's classes under the file name PyTorch gives them (aliases, not copies)."""

from ..layers.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

__all__ = ["AdaptiveAvgPool2d", "AvgPool2d", "MaxPool2d"]
