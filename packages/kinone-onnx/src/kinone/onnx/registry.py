"""The converter registry: one small function per Kinone `Function`, writing its ONNX nodes.

    @converter(Add)
    def add(g: GraphBuilder, call: Call):
        g.node("Add", call.inputs, call.output)

Which dims are dynamic is known before a converter runs (`Call.input_dynamic`,
`Call.output_dynamic`); only the converters that write shapes into the graph look at it.
"""

from __future__ import annotations

from collections.abc import Callable

CONVERTERS: dict[type, Callable] = {}

# Functions whose attributes are shapes, which change with the input's size (the converter
# writes them in a size-independent form). Any other Function whose attributes differ between
# the example and the probe cannot be exported with dynamic dims.
SHAPE_ATTRIBUTES: set[type] = set()

# Functions that only exist in training (losses, batch statistics, dropout masks): a model
# in eval mode never calls them, so they have no ONNX form. The export error says why.
TRAINING_ONLY: dict[type, str] = {}


def converter(*functions: type, shape_attributes: bool = False):
    """Register the decorated function as the converter of each of `functions`
    (`shape_attributes`: their attributes are shapes that the converter handles)."""

    def register(fn: Callable) -> Callable:
        for function in functions:
            if function in CONVERTERS:
                raise ValueError(f"kinone.onnx: {function.__name__} already has a converter")
            CONVERTERS[function] = fn
            if shape_attributes:
                SHAPE_ATTRIBUTES.add(function)
        return fn

    return register


def training_only(function: type, reason: str) -> None:
    TRAINING_ONLY[function] = reason


def supported_functions() -> list[str]:
    """Names of the Functions the exporter can write, sorted."""
    return sorted(f.__name__ for f in CONVERTERS)
