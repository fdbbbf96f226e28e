"""`Parameter`: a Tensor that a Module registers as learnable when assigned to an attribute."""

from __future__ import annotations

from kinone.autograd import Tensor


class Parameter(Tensor):
    """A leaf Tensor that requires grad by default and is listed by `Module.parameters()`.

    Wraps the given array without copying it (NumPy arrays keep their dtype; Python data
    follows the Tensor rules, float32 for floats).
    """

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
