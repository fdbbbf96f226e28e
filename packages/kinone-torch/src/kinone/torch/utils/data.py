"""`torch.utils.data`: kinone.data's `DataLoader`, datasets, samplers and collation."""

from kinone.data import *  # noqa: F403
from kinone.data import __all__ as _data_all

__all__ = list(_data_all)
