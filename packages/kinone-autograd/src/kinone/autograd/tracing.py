"""Tracing hook: observe every `Function.apply`, whatever the grad mode.

The ONNX exporter and graph views use this to see the computation as a list of
(Function, inputs, output, attributes) records, without the engine knowing about them.
When no hook is registered the cost on the hot path is one truthiness test of a list.

    with trace() as records:
        y = model(x)
    for r in records:
        print(r.function.__name__, [t.shape for t in r.inputs], r.output.shape, r.attrs)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# Hooks are process-wide (every thread's applies are reported): tracing is a debugging and
# export tool, run on one model at a time.
_apply_hooks: list[Callable[[TraceRecord], None]] = []


@dataclass(frozen=True)
class TraceRecord:
    """One `Function.apply`: the Function class, its tensor inputs, its output, its attributes."""

    function: type
    inputs: tuple
    output: Any
    attrs: dict


class RemovableHandle:
    """Returned by `register_apply_hook`; `remove()` unregisters the hook (idempotent)."""

    def __init__(self, hook):
        self._hook = hook

    def remove(self) -> None:
        try:
            _apply_hooks.remove(self._hook)
        except ValueError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.remove()
        return False


def register_apply_hook(hook: Callable[[TraceRecord], None]) -> RemovableHandle:
    """Call `hook(record)` after every `Function.apply` until the handle is removed."""
    _apply_hooks.append(hook)
    return RemovableHandle(hook)


@contextmanager
def trace() -> Iterator[list[TraceRecord]]:
    """Collect a `TraceRecord` for every `Function.apply` inside the block, in call order."""
    records: list[TraceRecord] = []
    handle = register_apply_hook(records.append)
    try:
        yield records
    finally:
        handle.remove()


def _notify(function: type, inputs: tuple, output, attrs: dict) -> None:
    record = TraceRecord(function, inputs, output, attrs)
    for hook in tuple(_apply_hooks):
        hook(record)
