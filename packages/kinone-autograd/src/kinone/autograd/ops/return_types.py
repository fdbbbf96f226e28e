"""The named tuples of ops that return values and their indices, as `torch.return_types`:
`x.max(dim)` is `max(values=..., indices=...)`, so both `values, indices = x.max(1)` and
`x.max(1).indices` read as in PyTorch."""

from __future__ import annotations

from typing import NamedTuple

from ..tensor import Tensor


class max(NamedTuple):
    values: Tensor
    indices: Tensor


class min(NamedTuple):
    values: Tensor
    indices: Tensor


class sort(NamedTuple):
    values: Tensor
    indices: Tensor


class topk(NamedTuple):
    values: Tensor
    indices: Tensor
