"""The converters, one module per family of Kinone Functions (importing them registers them)."""

from . import arithmetic, elementwise, nn, reduction, shape  # noqa: F401
