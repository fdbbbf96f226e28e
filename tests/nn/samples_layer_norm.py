"""Gradcheck samples: layer norm, group norm (instance norm is group norm with one channel per
group) and embedding, with and without their optional weight and bias."""

import numpy as np

from kinone.autograd import Tensor
from kinone.nn import functional as F
from kinone.nn.functional.embedding import Embedding
from kinone.nn.functional.normalization import GroupNorm, LayerNorm

rng = np.random.default_rng(16)


def r(*shape):
    return rng.standard_normal(shape)


def layer(shape, params=(), eps=1e-5):
    def fn(x, *given):
        named = dict(zip(params, given))
        return F.layer_norm(x, shape, named.get("weight"), named.get("bias"), eps)

    return fn


def group(groups, params=(), eps=1e-5):
    def fn(x, *given):
        named = dict(zip(params, given))
        return F.group_norm(x, groups, named.get("weight"), named.get("bias"), eps)

    return fn


def instance(x, weight, bias):
    return F.instance_norm(x, weight=weight, bias=bias)


def lookup(indices, **options):
    def fn(weight):
        return F.embedding(Tensor(np.array(indices)).to(weight.device), weight, **options)

    return fn


AFFINE = ("weight", "bias")

SAMPLES = {
    LayerNorm: [
        (layer(4, AFFINE), [r(3, 4) * 2 + 1, r(4), r(4)]),
        (layer((3, 4), AFFINE), [r(2, 5, 3, 4), r(3, 4), r(3, 4)]),  # two normalised dims, two leading
        (layer(5), [r(2, 3, 5)]),  # no weight or bias
        (layer(5, ("weight",), eps=0.1), [r(4, 5), r(5)]),
        (layer(5, ("bias",)), [r(4, 5), r(5)]),
    ],
    GroupNorm: [
        (group(2, AFFINE), [r(3, 4, 5) * 2 - 1, r(4), r(4)]),
        (group(3, AFFINE), [r(2, 6, 2, 3), r(6), r(6)]),
        (group(1), [r(2, 4, 3)]),  # one group: layer norm over (C, *)
        (group(4, ("weight",), eps=0.1), [r(2, 4, 3, 2), r(4)]),
        (instance, [r(2, 3, 4, 3), r(3), r(3)]),  # instance norm: one channel per group
    ],
    Embedding: [
        (lookup([[1, 2, 1], [4, 0, 2]]), [r(5, 3)]),
        # padding_idx and scale_grad_by_freq change the gradient on purpose (no finite difference
        # agrees), so these samples keep to unique, non-padding indices; test_parity_layer_norm
        # checks the changed gradients against PyTorch.
        (lookup([3, 0, 2], padding_idx=1), [r(4, 2)]),
        (lookup([[0, 2, 1]], scale_grad_by_freq=True), [r(3, 4)]),
        (lookup(2), [r(3, 2)]),  # a 0-d index
    ],
}
