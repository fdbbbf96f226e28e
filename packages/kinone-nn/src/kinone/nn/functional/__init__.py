"""kinone.nn.functional: stateless layer operations with PyTorch's names and signatures.

One family per module; heavy ops (convolution, pooling, batch norm, the losses) are single
Functions with fused analytic backward passes.
"""

from .activation import (
    elu,
    erf,
    gelu,
    hardsigmoid,
    hardswish,
    leaky_relu,
    log_softmax,
    mish,
    relu,
    relu6,
    sigmoid,
    silu,
    softmax,
    softplus,
    tanh,
)
from .attention import multi_head_attention_forward, scaled_dot_product_attention
from .conv import conv1d, conv2d, conv_transpose2d
from .distance import cosine_similarity
from .dropout import dropout, dropout2d
from .embedding import embedding
from .linear import linear
from .loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)
from .normalization import batch_norm, group_norm, instance_norm, layer_norm
from .padding import pad
from .pixel_shuffle import pixel_shuffle
from .pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from .upsample import interpolate

__all__ = [
    "adaptive_avg_pool2d",
    "avg_pool2d",
    "batch_norm",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "conv1d",
    "conv2d",
    "conv_transpose2d",
    "cosine_similarity",
    "cross_entropy",
    "dropout",
    "dropout2d",
    "elu",
    "embedding",
    "erf",
    "gelu",
    "group_norm",
    "hardsigmoid",
    "hardswish",
    "instance_norm",
    "interpolate",
    "kl_div",
    "l1_loss",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log_softmax",
    "max_pool2d",
    "mish",
    "mse_loss",
    "multi_head_attention_forward",
    "nll_loss",
    "pad",
    "pixel_shuffle",
    "relu",
    "relu6",
    "scaled_dot_product_attention",
    "sigmoid",
    "silu",
    "smooth_l1_loss",
    "softmax",
    "softplus",
    "tanh",
]
