"""`torch.nn.modules.batchnorm`: Kinone's classes under the file name PyTorch gives them (aliases, not copies)."""

from ..layers.normalization import BatchNorm1d, BatchNorm2d

__all__ = ["BatchNorm1d", "BatchNorm2d"]
