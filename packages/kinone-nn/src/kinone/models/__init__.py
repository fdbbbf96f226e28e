"""kinone.models: ResNet-18/34/50/101/152, EfficientNet-B0..B7 and DenseNet-121/161/169/201, with
torchvision's module tree, parameter names and parameter counts, so that torchvision checkpoints
convert by name.

    >>> from kinone import models
    >>> model = models.resnet18(num_classes=14, in_channels=1)
    >>> model.num_parameters()
    11177422
    >>> models.get_model("efficientnet_b0").num_parameters()
    5288548
    >>> models.densenet121(num_classes=14).num_parameters()  # CheXNet
    6968206
    >>> models.list_models("resnet*")
    ['resnet101', 'resnet152', 'resnet18', 'resnet34', 'resnet50']

Every builder takes `num_classes=1000`, `in_channels=3` and `weights=None` (a path to an
`.npz` state dict, e.g. from `python -m kinone.models.convert IN.pth OUT.npz`); 3-channel
weights load into a 1-channel model through `adapt_input_conv`.
"""

from .densenet import (
    DENSENET_CONFIGS,
    DenseNet,
    GrowChannels,
    densenet121,
    densenet161,
    densenet169,
    densenet201,
    remap_legacy_keys,
)
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
    "DENSENET_CONFIGS",
    "EFFICIENTNET_B0_STAGES",
    "EFFICIENTNET_SCALING",
    "RESNET_CONFIGS",
    "BasicBlock",
    "Bottleneck",
    "Conv2dNormActivation",
    "DenseNet",
    "EfficientNet",
    "GrowChannels",
    "MBConv",
    "MBConvConfig",
    "ResNet",
    "SqueezeExcitation",
    "StochasticDepth",
    "adapt_input_conv",
    "adapt_state_dict",
    "densenet121",
    "densenet161",
    "densenet169",
    "densenet201",
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
    "remap_legacy_keys",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "stochastic_depth",
]
