"""`torch.nn.modules.instancenorm`: Kinone's classes under the file name PyTorch gives them (aliases, not copies)."""

from ..layers.normalization import InstanceNorm1d, InstanceNorm2d, InstanceNorm3d

__all__ = ["InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"]
