"""`torch.nn.modules.distance`: Kinone's classes under the file name PyTorch gives them (aliases, not copies)."""

from ..layers.distance import CosineSimilarity

__all__ = ["CosineSimilarity"]
