"""`Case`: one benchmark, written once and run unchanged on Kinone and on PyTorch.

A case's `build(fw)` receives the framework's namespace (`kinone.autograd` or `torch`), sets
up its inputs and parameters, and returns `step`: a function of no arguments that runs one
iteration (forward and backward) and returns the scalar loss. Inputs are drawn with NumPy
and handed to `fw.tensor`, so both frameworks see the same numbers and the harness can
compare their losses. A case module imports neither framework at the top: the harness runs
each (case, framework) in its own process and imports only what that process measures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Reported unit -> how many of it make one second.
UNITS = {"us/op": 1e6, "ms/iter": 1e3, "ms/batch": 1e3}


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Any], Callable[[], Any]]
    unit: str  # a key of UNITS
    count: int = 1  # what one step is divided by: the number of ops, or 1 for "per iteration"
    target: float | None = None  # the kinone/torch time ratio the project aims to stay under

    def __post_init__(self):
        if self.unit not in UNITS:
            raise ValueError(f"{self.name}: unit {self.unit!r} is not one of {sorted(UNITS)}")

    @property
    def summary(self) -> str:
        """The first line of the build function's docstring."""
        return (self.build.__doc__ or "").strip().splitlines()[0] if self.build.__doc__ else ""

    def per_unit(self, seconds_per_step: float) -> float:
        """Convert the time of one step into the case's reported unit."""
        return seconds_per_step / self.count * UNITS[self.unit]
