"""Converter cases: layer norm, group and instance norm, embedding."""

import numpy as np

from kinone import nn
from kinone.autograd import Tensor
from kinone.autograd.ops.elementwise import Cast
from kinone.nn import functional as F
from kinone.nn.functional.activation import ELU, Hardsigmoid, Hardswish, LeakyReLU, Mish, ReLU6, Softplus
from kinone.nn.functional.distance import CosineSimilarity
from kinone.nn.functional.embedding import Embedding
from kinone.nn.functional.normalization import GroupNorm, LayerNorm

_rng = np.random.default_rng(16)


def randomized(layer):
    """The layer with its parameters drawn away from their ones/zeros start, in eval mode."""
    for param in layer.parameters():
        param.data[...] = _rng.uniform(0.5, 1.5, param.shape)
    return layer.eval()


def instance_norm_tracked():
    layer = randomized(nn.InstanceNorm2d(3, affine=True, track_running_stats=True))
    layer.train()
    layer(Tensor(_rng.standard_normal((4, 3, 5, 5)).astype(np.float32)))  # running statistics away from 0 and 1
    return layer.eval()


COLUMN = Tensor(_rng.standard_normal((3, 1)).astype(np.float32))
EMBEDDING = randomized(nn.Embedding(10, 4, padding_idx=0))


def indices(x, rows=10):
    """Integer indices made from the float input (|x| · 3, truncated), so the model has one input.
    Cast is applied as a Function: Tensor.to(int) makes an untraced tensor (it has no gradient)."""
    return Cast.apply((x.abs() * 3).clamp(max=rows - 1), dtype=np.int64)


CASES = {
    LayerNorm: [
        (randomized(nn.LayerNorm(5)), (2, 3, 5)),
        (randomized(nn.LayerNorm((3, 4))), (2, 3, 4)),
        (nn.LayerNorm(5, elementwise_affine=False), (2, 5)),
        (randomized(nn.LayerNorm(5, bias=False)), (2, 5)),
        (randomized(nn.LayerNorm(5)), (2, 3, 5), {"opset": 13}),
    ],
    GroupNorm: [
        (randomized(nn.GroupNorm(2, 4)), (2, 4, 3, 3)),
        (nn.GroupNorm(3, 6, affine=False), (2, 6, 5)),
        (randomized(nn.GroupNorm(1, 4)), (2, 4)),
        (lambda x: F.group_norm(x, 2, bias=Tensor(np.ones(4, np.float32))), (2, 4, 3)),
        (nn.InstanceNorm2d(3), (2, 3, 4, 4)),
        (randomized(nn.InstanceNorm1d(3, affine=True)), (2, 3, 6)),
    ],
    Embedding: [
        (lambda x: EMBEDDING(indices(x)), (2, 5)),
        (lambda x: F.embedding(indices(x), EMBEDDING.weight), (2, 3, 4)),
    ],
}

CASES.update(
    {
        LeakyReLU: [(nn.LeakyReLU(), (2, 3)), (nn.LeakyReLU(0.2), (2, 3, 4))],
        ELU: [(nn.ELU(), (2, 3)), (nn.ELU(alpha=0.5), (2, 3))],
        Softplus: [(nn.Softplus(), (2, 3)), (lambda x: F.softplus(x * 4, beta=2.0, threshold=3.0), (2, 5))],
        ReLU6: [(lambda x: F.relu6(x * 5), (2, 3))],
        Hardsigmoid: [(lambda x: F.hardsigmoid(x * 4), (2, 3))],
        Hardswish: [(lambda x: F.hardswish(x * 4), (2, 3))],
        Mish: [(nn.Mish(), (2, 3)), (nn.Mish(), (2, 3), {"opset": 18})],
        CosineSimilarity: [
            (lambda x: nn.CosineSimilarity()(x, x * x), (2, 4)),
            (lambda x: F.cosine_similarity(x, COLUMN, dim=-2), (2, 3, 4)),
        ],
    }
)

# In eval mode with running statistics, instance norm is batch norm's eval form.
from kinone.nn.functional.normalization import BatchNormEval  # noqa: E402

CASES[BatchNormEval] = [(instance_norm_tracked(), (2, 3, 4, 4))]
