"""`torch.nn.modules.normalization`: Kinone's classes under the file name PyTorch gives them (aliases, not copies)."""

from ..layers.normalization import GroupNorm, LayerNorm

__all__ = ["GroupNorm", "LayerNorm"]
