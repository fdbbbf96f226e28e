"""The model registry: builders by name, as torchvision's `get_model` / `list_models`."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable

BUILDERS: dict[str, Callable] = {}


def register_model(builder: Callable | None = None, *, name: str | None = None):
    """Register a builder under `name` (default: its function name); usable as a decorator."""

    def register(fn: Callable) -> Callable:
        key = name or fn.__name__
        if key in BUILDERS:
            raise ValueError(f"register_model: a model named {key!r} is already registered")
        BUILDERS[key] = fn
        return fn

    return register if builder is None else register(builder)


def list_models(include: str | Iterable[str] | None = None, exclude: str | Iterable[str] | None = None) -> list[str]:
    """Registered model names, sorted; `include`/`exclude` filter with shell patterns ("resnet*")."""

    def patterns(value):
        return [value] if isinstance(value, str) else list(value)

    names = sorted(BUILDERS)
    if include is not None:
        names = [n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns(include))]
    if exclude is not None:
        names = [n for n in names if not any(fnmatch.fnmatch(n, p) for p in patterns(exclude))]
    return names


def get_model_builder(name: str) -> Callable:
    """The builder function registered under `name` (e.g. `resnet18`)."""
    try:
        return BUILDERS[name.lower()]
    except KeyError:
        raise ValueError(f"get_model: unknown model {name!r}; available: {', '.join(list_models())}") from None


def get_model(name: str, **kwargs):
    """Build the model registered under `name`: `get_model("resnet18", num_classes=14, in_channels=1)`."""
    return get_model_builder(name)(**kwargs)
