"""Attention as PyTorch computes it, composed of autograd ops (linear, matmul, softmax, dropout,
reshape, permute, cat), so every gradient is the chain rule through them.

    scores = (Q / √d) · Kᵀ + M,   A = softmax(scores) over the keys,   out = A · V

M is the additive mask: a float mask as given, a boolean mask as -inf where attention is not
allowed and 0 elsewhere. The two functions differ in what True means, as in PyTorch:
`multi_head_attention_forward` (and nn.MultiheadAttention, nn.Transformer*) masks out where a
boolean mask is True; `scaled_dot_product_attention` lets attend where it is True.
"""

from __future__ import annotations

import math

import numpy as np

from kinone.autograd import Tensor, zeros
from kinone.autograd import cat as _cat
from kinone.autograd.backend import as_array, get_array_module

from .activation import softmax
from .dropout import dropout
from .linear import linear


def additive_mask(mask, name: str, like: Tensor, masked_when: bool = True) -> Tensor | None:
    """`mask` as a float Tensor to add to attention scores: a boolean mask becomes -inf where it
    equals `masked_when` and 0 elsewhere; a float mask is kept (in like's dtype)."""
    if mask is None:
        return None
    mask = mask if isinstance(mask, Tensor) else Tensor(as_array(mask, like.data))
    if mask.dtype == np.bool_:
        xp = get_array_module(mask.data)
        hidden = mask.data if masked_when else ~mask.data
        return Tensor(xp.where(hidden, like.dtype.type(-np.inf), like.dtype.type(0)))
    if mask.dtype.kind != "f":
        raise TypeError(f"attention: {name} must be a boolean or floating-point mask, got dtype {mask.dtype}")
    return mask if mask.dtype == like.dtype else mask.to(like.dtype)


def _pad_key(mask: Tensor | None) -> Tensor | None:
    """One more key column, allowed (0), for an appended bias or zero key."""
    if mask is None:
        return None
    return _cat([mask, zeros(*mask.shape[:-1], 1, dtype=mask.dtype, device=mask.device)], dim=-1)


def attend(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, dropout_p: float, scale: float):
    """(A · V, A) with A = dropout(softmax(q·scale · kᵀ + bias)) over the last two dims."""
    scores = (q * scale) @ k.transpose(-2, -1)
    if bias is not None:
        scores = scores + bias
    weights = softmax(scores, dim=-1)
    if dropout_p > 0:
        weights = dropout(weights, dropout_p, training=True)
    return weights @ v, weights


def scaled_dot_product_attention(
    query,
    key,
    value,
    attn_mask=None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale=None,
    enable_gqa: bool = False,
) -> Tensor:
    """softmax(Q·Kᵀ·scale + M) · V over inputs (..., L, E), (..., S, E), (..., S, Ev), scale 1/√E
    by default. A boolean attn_mask is True where attention is allowed; is_causal lets query i
    attend to keys 0..i. Dropout with dropout_p applies whenever dropout_p > 0, as PyTorch."""
    if enable_gqa:
        raise NotImplementedError(
            "scaled_dot_product_attention: enable_gqa=True (grouped-query attention) is not supported by Kinone"
        )
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: give attn_mask or is_causal=True, not both")
    length, source = query.shape[-2], key.shape[-2]
    if is_causal:
        xp = get_array_module(query.data)
        attn_mask = Tensor(xp.tril(xp.ones((length, source), dtype=bool)))
    bias = additive_mask(attn_mask, "attn_mask", query, masked_when=False)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    return attend(query, key, value, bias, dropout_p, scale)[0]


def _thirds(x: Tensor) -> list[Tensor]:
    """The q, k and v thirds of a packed in_proj weight (3E, E) or bias (3E,), along dim 0."""
    size = x.shape[0] // 3
    return [x[k * size : (k + 1) * size] for k in range(3)]


def _project(query, key, value, in_proj_weight, in_proj_bias, separate_weights):
    """Q, K, V = query·W_qᵀ + b_q, key·W_kᵀ + b_k, value·W_vᵀ + b_v (sequence-first)."""
    if separate_weights is None and query is key and key is value:
        packed = linear(query, in_proj_weight, in_proj_bias)  # self-attention: one GEMM
        size = packed.shape[-1] // 3
        return [packed[..., k * size : (k + 1) * size] for k in range(3)]
    weights = separate_weights or _thirds(in_proj_weight)
    biases = [None] * 3 if in_proj_bias is None else _thirds(in_proj_bias)
    return [linear(x, w, b) for x, w, b in zip((query, key, value), weights, biases)]


def _split_heads(x: Tensor, num_heads: int) -> Tensor:
    """(S, N, E) -> (N, H, S, E / H)."""
    length, batch, embed_dim = x.shape
    return x.reshape(length, batch, num_heads, embed_dim // num_heads).permute(1, 2, 0, 3)


def _check_masks(attn_mask, key_padding_mask, shape: tuple, num_heads: int) -> None:
    length, batch, source = shape
    if attn_mask is not None:
        expected = {2: (length, source), 3: (batch * num_heads, length, source)}.get(attn_mask.ndim)
        if tuple(attn_mask.shape) != expected:
            raise ValueError(
                f"multi_head_attention_forward: attn_mask of shape {tuple(attn_mask.shape)} should be "
                f"{(length, source)} or {(batch * num_heads, length, source)}"
            )
    if key_padding_mask is not None and tuple(key_padding_mask.shape) != (batch, source):
        raise ValueError(
            f"multi_head_attention_forward: key_padding_mask of shape {tuple(key_padding_mask.shape)} should be {(batch, source)}"
        )


def multi_head_attention_forward(
    query,
    key,
    value,
    embed_dim_to_check: int,
    num_heads: int,
    in_proj_weight,
    in_proj_bias,
    bias_k,
    bias_v,
    add_zero_attn: bool,
    dropout_p: float,
    out_proj_weight,
    out_proj_bias,
    training: bool = True,
    key_padding_mask=None,
    need_weights: bool = True,
    attn_mask=None,
    use_separate_proj_weight: bool = False,
    q_proj_weight=None,
    k_proj_weight=None,
    v_proj_weight=None,
    static_k=None,
    static_v=None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
):
    """Multi-head attention over sequence-first inputs (L, N, E) / (S, N, E), or unbatched (L, E).

    Q = query·W_qᵀ + b_q, K = key·W_kᵀ + b_k, V = value·W_vᵀ + b_v, split into num_heads heads;
    per head A = softmax(Q·Kᵀ/√(E/H) + M), head = A·V; out = concat(heads)·W_oᵀ + b_o.
    Returns (out, A averaged over heads (N, L, S), or per head (N, H, L, S), or None when
    need_weights is False). is_causal is a hint, as in PyTorch: attn_mask must be given and is used.
    """
    if static_k is not None or static_v is not None:
        raise NotImplementedError("multi_head_attention_forward: static_k and static_v are not supported by Kinone")
    if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
        raise ValueError(
            f"multi_head_attention_forward: query, key and value must all be 3-D (L, N, E) or all 2-D (L, E), "
            f"got shapes {query.shape}, {key.shape}, {value.shape}"
        )
    if is_causal and attn_mask is None:
        raise ValueError(
            "multi_head_attention_forward: is_causal=True needs attn_mask (see Transformer.generate_square_subsequent_mask)"
        )
    batched = query.ndim == 3
    if not batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
    length, batch, embed_dim = query.shape
    if key.shape[:2] != value.shape[:2] or key.shape[1] != batch:
        raise ValueError(
            f"multi_head_attention_forward: key {key.shape} and value {value.shape} need the same (S, N) as each other "
            f"and batch {batch} of query {query.shape}"
        )
    if embed_dim != embed_dim_to_check or embed_dim % num_heads:
        raise ValueError(
            f"multi_head_attention_forward: query of shape {query.shape} needs embed dim {embed_dim_to_check}, "
            f"divisible by num_heads={num_heads}"
        )
    attn_mask = additive_mask(attn_mask, "attn_mask", query)
    key_padding_mask = additive_mask(key_padding_mask, "key_padding_mask", query)
    if key_padding_mask is not None and not batched:
        key_padding_mask = key_padding_mask.unsqueeze(0)
    _check_masks(attn_mask, key_padding_mask, (length, batch, key.shape[0]), num_heads)

    separate = (q_proj_weight, k_proj_weight, v_proj_weight) if use_separate_proj_weight else None
    q, k, v = _project(query, key, value, in_proj_weight, in_proj_bias, separate)
    if bias_k is not None and bias_v is not None:
        k = _cat([k, bias_k.expand(1, batch, embed_dim)], dim=0)
        v = _cat([v, bias_v.expand(1, batch, embed_dim)], dim=0)
        attn_mask, key_padding_mask = _pad_key(attn_mask), _pad_key(key_padding_mask)
    q, k, v = (_split_heads(x, num_heads) for x in (q, k, v))
    if add_zero_attn:
        k = _cat([k, zeros(batch, num_heads, 1, k.shape[-1], dtype=k.dtype, device=k.device)], dim=2)
        v = _cat([v, zeros(batch, num_heads, 1, v.shape[-1], dtype=v.dtype, device=v.device)], dim=2)
        attn_mask, key_padding_mask = _pad_key(attn_mask), _pad_key(key_padding_mask)

    bias = _merged_bias(attn_mask, key_padding_mask, batch, num_heads)
    head_dim = embed_dim // num_heads
    heads, weights = attend(q, k, v, bias, dropout_p if training else 0.0, math.sqrt(1.0 / head_dim))
    out = heads.permute(2, 0, 1, 3).reshape(length, batch, embed_dim)
    out = linear(out, out_proj_weight, out_proj_bias)
    if need_weights and average_attn_weights:
        weights = weights.mean(dim=1)
    if not batched:
        out = out.squeeze(1)
        weights = weights.squeeze(0)
    return out, (weights if need_weights else None)


def _merged_bias(attn_mask, key_padding_mask, batch: int, num_heads: int):
    """attn_mask (L, S) or (N·H, L, S) plus key_padding_mask (N, S), broadcast to (N, H, L, S)."""
    if attn_mask is not None and attn_mask.ndim == 3:
        attn_mask = attn_mask.reshape(batch, num_heads, *attn_mask.shape[1:])
    if key_padding_mask is not None:
        key_padding_mask = key_padding_mask.reshape(batch, 1, 1, key_padding_mask.shape[-1])
        return key_padding_mask if attn_mask is None else attn_mask + key_padding_mask
    return attn_mask
