"""kinone.torchvision: torchvision's `transforms` and `datasets` names over kinone.data."""

from . import datasets, transforms

__all__ = ["datasets", "transforms"]
