"""Argument normalisation shared by the 2-D layers."""

from __future__ import annotations


def pair(value, name: str = "argument") -> tuple[int, int]:
    """An int or a pair of ints as a pair: 3 -> (3, 3), (3, 1) -> (3, 1)."""
    if isinstance(value, int):
        return (value, value)
    value = tuple(value)
    if len(value) != 2 or not all(isinstance(v, int) for v in value):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return value
