"""`torch.autograd`: kinone.autograd, with `Function` meaning the PyTorch form.

A PyTorch user's `class Exp(torch.autograd.Function)` writes `forward(ctx, ...)` and
`backward(ctx, ...)` on Tensors: that is Kinone's `TensorFunction`. (Kinone's own
`kinone.autograd.Function` is the array form its built-in ops use.)
"""

from kinone.autograd import *  # noqa: F403
from kinone.autograd import TensorFunction as Function  # noqa: F401
from kinone.autograd import __all__ as _all
from kinone.autograd import gradcheck  # noqa: F401

__all__ = list(_all)
