"""`torchvision.transforms`: kinone.data.transforms under torchvision's names."""

from kinone.data import transforms as _transforms
from kinone.data.transforms import *  # noqa: F403

__all__ = [
    name
    for name, obj in vars(_transforms).items()
    if not name.startswith("_") and getattr(obj, "__module__", None) == _transforms.__name__
]
