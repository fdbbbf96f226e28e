"""`torch.nn.modules.sparse`: Kinone's classes under the file name PyTorch gives them (aliases, not copies)."""

from ..layers.embedding import Embedding

__all__ = ["Embedding"]
