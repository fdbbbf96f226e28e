"""`torch.nn.modules.container`: Kinone's classes under the file name PyTorch gives them (aliases, not copies)."""

from ..containers import ModuleDict, ModuleList, Sequential

__all__ = ["ModuleDict", "ModuleList", "Sequential"]
