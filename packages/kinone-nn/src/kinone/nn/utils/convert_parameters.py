"""`parameters_to_vector` / `vector_to_parameters`, as `torch.nn.utils`."""

from __future__ import annotations

from kinone.autograd import Tensor, backend, cat, increment_version


def parameters_to_vector(parameters) -> Tensor:
    """The parameters flattened and laid end to end (a new Tensor, in the graph)."""
    return cat([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec: Tensor, parameters) -> None:
    """Copy consecutive slices of `vec` into the parameters' data, in place (outside the graph)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"vector_to_parameters: expected a Tensor, got {type(vec).__name__}")
    parameters = list(parameters)
    total = sum(p.data.size for p in parameters)
    if vec.ndim != 1 or vec.shape[0] != total:
        raise ValueError(
            f"vector_to_parameters: the vector has shape {tuple(vec.shape)}; the parameters hold {total} values"
        )
    offset = 0
    for p in parameters:
        size = p.data.size
        p.data[...] = backend.as_array(vec.data[offset : offset + size], p.data).reshape(p.shape)
        increment_version(p)
        offset += size
