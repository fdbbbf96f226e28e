"""kinone.models: ResNet-18/34/50/101/152 and EfficientNet-B0..B7, with torchvision's module
tree, parameter names and parameter counts, so that torchvision checkpoints convert by name.

    >>> from kinone import models
    >>> model = models.resnet18(num_classes=14, in_channels=1)
    >>> model.num_parameters()
    11177422
    >>> models.get_model("efficientnet_b0").num_parameters()
    5288548
    >>> models.list_models("resnet*")
    ['resnet101', 'resnet152', 'resnet18', 'resnet34', 'resnet50']

Every builder takes `num_classes=1000`, `in_channels=3` and `weights=None` (a path to an
`.npz` state dict, e.g. from `python -m kinone.models.convert IN.pth OUT.npz`); 3-channel
weights load into a 1-channel model through `adapt_input_conv`.
"""

from .efficientnet import (
    EFFICIENTNET_B0_STAGES,
    EFFICIENTNET_SCALING,
    Conv2dNormActivation,
    EfficientNet,
    MBConv,
    MBConvConfig,
    SqueezeExcitation,
    StochasticDepth,
    efficientnet_b0,
    efficientnet_b1,
    efficientnet_b2,
    efficientnet_b3,
    efficientnet_b4,
    efficientnet_b5,
    efficientnet_b6,
    efficientnet_b7,
    efficientnet_config,
    stochastic_depth,
)
from .registry import get_model, get_model_builder, list_models, register_model
from .resnet import RESNET_CONFIGS, BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50, resnet101, resnet152
from .weights import adapt_input_conv, adapt_state_dict, first_conv_key, load_weights

__all__ = [
    "EFFICIENTNET_B0_STAGES",
    "EFFICIENTNET_SCALING",
    "RESNET_CONFIGS",
    "BasicBlock",
    "Bottleneck",
    "Conv2dNormActivation",
    "EfficientNet",
    "MBConv",
    "MBConvConfig",
    "ResNet",
    "SqueezeExcitation",
    "StochasticDepth",
    "adapt_input_conv",
    "adapt_state_dict",
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "efficientnet_b4",
    "efficientnet_b5",
    "efficientnet_b6",
    "efficientnet_b7",
    "efficientnet_config",
    "first_conv_key",
    "get_model",
    "get_model_builder",
    "list_models",
    "load_weights",
    "register_model",
    "resnet101",
    "resnet152",
    "resnet18",
    "resnet34",
    "resnet50",
    "stochastic_depth",
]
