"""Similarity layers."""

from __future__ import annotations

from ..functional.distance import cosine_similarity
from ..module import Module


class CosineSimilarity(Module):
    """Cosine similarity of two inputs along `dim`, each norm clamped below at eps."""

    def __init__(self, dim: int = 1, eps: float = 1e-8):
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1, x2):
        return cosine_similarity(x1, x2, self.dim, self.eps)
