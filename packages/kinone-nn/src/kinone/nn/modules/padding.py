"""`torch.nn.modules.padding`: Kinone's classes under the file name PyTorch gives them (aliases, not copies)."""

from ..layers.padding import ConstantPad2d, ReflectionPad2d, ReplicationPad2d, ZeroPad2d

__all__ = ["ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d", "ZeroPad2d"]
