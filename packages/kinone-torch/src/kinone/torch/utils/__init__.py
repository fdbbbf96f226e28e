"""`torch.utils`: only `data` (kinone.data's loader, datasets and samplers)."""

from . import data

__all__ = ["data"]
