"""kinone.torchvision: torchvision's `transforms` and `datasets` names over kinone.data, and `utils`
(`make_grid`, `save_image`)."""

from . import datasets, transforms, utils

__all__ = ["datasets", "transforms", "utils"]
