"""Dropout layer."""

from __future__ import annotations

from .. import functional as F
from ..module import Module


class Dropout(Module):
    """In training, zeroes each element with probability p and scales the rest by 1/(1-p); identity in eval."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout2d(Dropout):
    """In training, zeroes each channel of each sample (all its positions) with probability p and
    scales the rest by 1/(1-p); identity in eval. Input (N, C, H, W)."""

    def forward(self, x):
        return F.dropout2d(x, self.p, self.training)
