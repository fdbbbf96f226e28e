"""Activation layers (no parameters)."""

from __future__ import annotations

from .. import functional as F
from ..module import Module


class ReLU(Module):
    """max(x, 0). `inplace` is accepted for PyTorch compatibility and ignored (no in-place ops)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return F.relu(x)


class SiLU(Module):
    """x · sigmoid(x). `inplace` is accepted and ignored."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return F.silu(x)


class GELU(Module):
    """x · Φ(x), exact erf form."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)


class Sigmoid(Module):
    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class Softmax(Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x):
        return F.log_softmax(x, self.dim)


class LeakyReLU(Module):
    """x where x > 0, negative_slope · x elsewhere. `inplace` is accepted and ignored."""

    def __init__(self, negative_slope: float = 1e-2, inplace: bool = False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(Module):
    """x where x > 0, alpha · (exp(x) - 1) elsewhere. `inplace` is accepted and ignored."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, x):
        return F.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Softplus(Module):
    """log(1 + exp(beta · x)) / beta, linear where beta · x > threshold."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        return F.softplus(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class _Unary(Module):
    """An activation without options (`inplace` is accepted and ignored)."""

    function = None

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return type(self).function(x)


class ReLU6(_Unary):
    """min(max(x, 0), 6)."""

    function = staticmethod(F.relu6)


class Hardsigmoid(_Unary):
    """min(max(x / 6 + 1/2, 0), 1)."""

    function = staticmethod(F.hardsigmoid)


class Hardswish(_Unary):
    """x · hardsigmoid(x)."""

    function = staticmethod(F.hardswish)


class Mish(_Unary):
    """x · tanh(softplus(x))."""

    function = staticmethod(F.mish)
