"""Embedding: look up rows of a weight matrix by integer index (as torch.nn.functional.embedding).

The weight gradient adds the upstream gradient of every occurrence of an index into that
index's row. It is written as a gather, not a scatter: the occurrences are sorted by index
(a stable sort) and each run of equal indices is summed with `add.reduceat`, so the sums are
deterministic on every device (no atomics) and no `add.at` runs on the hot path.
"""

from __future__ import annotations

from kinone.autograd import Function, Tensor, increment_version, no_grad
from kinone.autograd.backend import get_array_module


class Embedding(Function):
    """y = W[i] (y[p, :] = W[i_p, :] for each position p) for integer indices i and a weight W of shape (V, D);
    dL/dW[v] = Σ_{positions p with i_p = v} g_p  (0 for v = padding_idx; divided by the count of
    v in i when scale_grad_by_freq);  the indices have no gradient."""

    @staticmethod
    def forward(ctx, indices, weight, *, padding_idx=None, scale_grad_by_freq=False):
        ctx.num_embeddings = weight.shape[0]
        ctx.save_for_backward(indices)
        return weight[indices]

    @staticmethod
    def backward(ctx, grad):
        (indices,) = ctx.saved
        if not ctx.needs_input_grad[1]:
            return None, None
        xp = get_array_module(grad)
        flat = indices.reshape(-1)
        rows = grad.reshape(flat.size, -1)
        dweight = xp.zeros((ctx.num_embeddings, rows.shape[1]), dtype=grad.dtype)
        if flat.size == 0:
            return None, dweight
        order = xp.argsort(flat, kind="stable")
        ordered = flat[order]
        starts = xp.flatnonzero(xp.concatenate([xp.ones(1, dtype=bool), ordered[1:] != ordered[:-1]]))
        sums = xp.add.reduceat(rows[order], starts, axis=0)
        unique = ordered[starts]
        if ctx.attrs.get("scale_grad_by_freq"):
            counts = xp.diff(xp.concatenate([starts, xp.asarray([flat.size], dtype=starts.dtype)]))
            sums /= counts[:, None].astype(grad.dtype)
        dweight[unique] = sums
        padding_idx = ctx.attrs.get("padding_idx")
        if padding_idx is not None:
            dweight[padding_idx] = 0
        return None, dweight


def _renorm_rows(indices: Tensor, weight: Tensor, max_norm: float, norm_type: float) -> None:
    """Rescale, in place, the rows of weight that indices refer to and whose norm_type-norm
    exceeds max_norm, to norm max_norm (scale max_norm / (norm + 1e-7), as PyTorch)."""
    xp = get_array_module(weight.data)
    with no_grad():
        rows = xp.unique(indices.data.reshape(-1))
        selected = weight.data[rows]
        norms = (xp.abs(selected) ** norm_type).sum(axis=1) ** (1.0 / norm_type)
        scale = xp.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0).astype(weight.dtype)
        weight.data[rows] = selected * scale[:, None]
    increment_version(weight)


def embedding(
    input,
    weight: Tensor,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Tensor:
    """Rows of weight (V, D) at the integer indices of input (any shape): output (*input.shape, D).

    padding_idx: that row receives no gradient (its value is used as it is). max_norm: the rows
    looked up are first rescaled in place to norm at most max_norm. scale_grad_by_freq: each
    row's gradient is divided by how often its index occurs in input.
    """
    op = "embedding"
    input = input if isinstance(input, Tensor) else Tensor(input)
    if input.dtype.kind not in "iu":
        raise TypeError(f"{op}: input must hold integer indices (e.g. int64), got dtype {input.dtype}")
    if not isinstance(weight, Tensor) or weight.ndim != 2:
        shape = weight.shape if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(f"{op}: weight must be a 2-D Tensor (num_embeddings, embedding_dim), got {shape}")
    if sparse:
        raise ValueError(f"{op}: sparse=True is not supported (Kinone has no sparse gradients); use sparse=False")
    num_embeddings = weight.shape[0]
    if padding_idx is not None:
        if not -num_embeddings <= padding_idx < num_embeddings:
            raise ValueError(f"{op}: padding_idx={padding_idx} must be within num_embeddings={num_embeddings}")
        padding_idx = padding_idx % num_embeddings
    if input.data.size:
        low, high = int(input.data.min()), int(input.data.max())
        if low < 0 or high >= num_embeddings:
            bad = low if low < 0 else high
            raise IndexError(
                f"{op}: index {bad} is out of range for a weight of {num_embeddings} rows "
                f"(expected 0 <= index < {num_embeddings})"
            )
    if max_norm is not None:
        _renorm_rows(input, weight, float(max_norm), float(norm_type))
    return Embedding.apply(input, weight, padding_idx=padding_idx, scale_grad_by_freq=bool(scale_grad_by_freq))
