"""kinone.optim: optimizers that update parameters in place, and learning-rate schedulers.

    >>> import numpy as np
    >>> from kinone.autograd import Tensor
    >>> from kinone.optim import SGD
    >>> w = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    >>> opt = SGD([w], lr=0.1, momentum=0.9)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> w.data
    array([ 0.8, -1.6])

Optimizers: SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, Adamax, NAdam, RAdam. Their update
rules, state names (`momentum_buffer`, `exp_avg`, ...) and `state_dict()` layout are PyTorch's
(`torch.optim`), so the same hyperparameters give the same trajectory. Schedulers are in
`kinone.optim.lr_scheduler`.
"""

from . import lr_scheduler
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .nadam import NAdam
from .optimizer import Optimizer
from .radam import RAdam
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = [
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "NAdam",
    "Optimizer",
    "RAdam",
    "RMSprop",
    "lr_scheduler",
]
