"""kinone.torch: PyTorch's names over Kinone, so that a PyTorch script runs by changing its imports.

    import kinone.torch as torch
    import kinone.torch.nn as nn
    import kinone.torch.nn.functional as F
    import kinone.torch.optim as optim
    from kinone.torch.utils.data import DataLoader
    from kinone.torchvision import datasets, transforms

Nothing here computes: every name is Kinone's own object (`torch.nn` *is* `kinone.nn`,
`torch.Tensor` *is* `kinone.autograd.Tensor`), re-exported under the name PyTorch gives it.
The top level holds everything `kinone.autograd` exports (tensor creation, the math
functions, dtypes, grad modes, `manual_seed`, `device`), plus `save`/`load` (`.npz`, no
pickle) and the submodules (`Size`, `is_tensor` and `numel` come with kinone.autograd). What does not follow PyTorch is
listed in this package's README ("What differs"); the main one: `Tensor.data` is the NumPy
(or CuPy) array itself, not a Tensor.
"""

from __future__ import annotations

import sys as _sys

import kinone.autograd as _autograd
from kinone import nn, optim
from kinone.autograd import *  # noqa: F403 - the torch namespace is kinone.autograd's
from kinone.nn import functional as _functional
from kinone.optim import lr_scheduler as _lr_scheduler

# Re-exported through the computed __all__ below.
from . import _parallel, accelerator, autograd, backends, onnx, serialization, utils  # noqa: F401
from .__about__ import __version__  # noqa: F401
from .serialization import load, save  # noqa: F401

cuda = _autograd.cuda

# `import kinone.torch.nn.functional as F` and `from kinone.torch.optim.lr_scheduler import
# StepLR` find these entries: the submodules are Kinone's modules themselves, not copies.
for _name, _module in {
    "nn": nn,
    "nn.functional": _functional,
    "nn.init": nn.init,
    "optim": optim,
    "optim.lr_scheduler": _lr_scheduler,
    "cuda": cuda,
    "nn.parallel": _parallel,
    "nn.modules": nn.modules,
}.items():
    _sys.modules.setdefault(f"{__name__}.{_name}", _module)
for _name in nn.modules.__all__:  # `torch.nn.modules.rnn.LSTM`, as PyTorch's safe_globals lists name it
    _sys.modules.setdefault(f"{__name__}.nn.modules.{_name}", getattr(nn.modules, _name))


__all__ = sorted(
    {
        *_autograd.__all__,
        "accelerator",
        "autograd",
        "backends",
        "cuda",
        "load",
        "nn",
        "onnx",
        "optim",
        "save",
        "serialization",
        "utils",
        "__version__",
    }
)
