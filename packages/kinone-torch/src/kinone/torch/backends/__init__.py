"""`torch.backends`: what a script asks about Apple's MPS and cuDNN (Kinone has neither).

`import torch.backends.cudnn as cudnn; cudnn.benchmark = True` works: the flags are plain
attributes that nothing in Kinone reads.
"""

from . import cudnn, mps

__all__ = ["cudnn", "mps"]
