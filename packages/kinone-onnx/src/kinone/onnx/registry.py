"""The converter registry: one small function per Kinone `Function`, writing its ONNX nodes.

    @converter(Add)
    def add(g: GraphBuilder, call: Call):
        g.node("Add", call.inputs, call.output)

A converter may return the output's batch axis (an int), `NOT_BATCHED`, or nothing: then
the output is batched where its inputs are, aligned as broadcasting aligns them (right to
left), which is right for every elementwise operator.
"""

from __future__ import annotations

from typing import Callable

NOT_BATCHED = "not batched"

CONVERTERS: dict[type, Callable] = {}

# Functions that only exist in training (losses, batch statistics, dropout masks): a model
# in eval mode never calls them, so they have no ONNX form. The export error says why.
TRAINING_ONLY: dict[type, str] = {}


def converter(*functions: type):
    """Register the decorated function as the converter of each of `functions`."""

    def register(fn: Callable) -> Callable:
        for function in functions:
            if function in CONVERTERS:
                raise ValueError(f"kinone.onnx: {function.__name__} already has a converter")
            CONVERTERS[function] = fn
        return fn

    return register


def training_only(function: type, reason: str) -> None:
    TRAINING_ONLY[function] = reason


def supported_functions() -> list[str]:
    """Names of the Functions the exporter can write, sorted."""
    return sorted(f.__name__ for f in CONVERTERS)
