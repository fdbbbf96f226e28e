"""The converters, one module per family of Kinone Functions (importing them registers them:
every module of this package is imported, so a new family is a new file)."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
