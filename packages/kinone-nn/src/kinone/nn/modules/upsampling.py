"""`torch.nn.modules.upsampling`: Kinone's classes under the file name PyTorch gives them (aliases, not copies)."""

from ..layers.upsample import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d

__all__ = ["Upsample", "UpsamplingBilinear2d", "UpsamplingNearest2d"]
