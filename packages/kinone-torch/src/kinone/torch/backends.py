"""`torch.backends`: what a script asks about Apple's MPS and cuDNN (Kinone has neither)."""

from __future__ import annotations

from types import SimpleNamespace

mps = SimpleNamespace(is_available=lambda: False, is_built=lambda: False)
cudnn = SimpleNamespace(benchmark=False, deterministic=True, enabled=False, is_available=lambda: False)
