"""In-place methods of Tensor (a base class of Tensor, holding no state of its own)."""

from __future__ import annotations


class InPlaceMethods:
    __slots__ = ()
