"""`kinone.nn.modules`: PyTorch's `torch.nn.modules.<file>.<Class>` paths over Kinone's classes.

PyTorch defines its layers in files under `torch/nn/modules/` and code names them by those
paths (`torch.serialization.safe_globals([torch.nn.modules.rnn.LSTM, ...])`). Each submodule
here re-exports Kinone's own classes under PyTorch's file name: `kinone.nn.modules.rnn.LSTM`
*is* `kinone.nn.LSTM`. No class is defined here. `linear.NonDynamicallyQuantizableLinear` is
the class MultiheadAttention's `out_proj` is, as in PyTorch.
"""

from . import (
    activation,
    batchnorm,
    container,
    conv,
    distance,
    dropout,
    flatten,
    instancenorm,
    linear,
    loss,
    module,
    normalization,
    padding,
    pixelshuffle,
    pooling,
    rnn,
    sparse,
    transformer,
    upsampling,
)

__all__ = [
    "activation",
    "batchnorm",
    "container",
    "conv",
    "distance",
    "dropout",
    "flatten",
    "instancenorm",
    "linear",
    "loss",
    "module",
    "normalization",
    "padding",
    "pixelshuffle",
    "pooling",
    "rnn",
    "sparse",
    "transformer",
    "upsampling",
]
