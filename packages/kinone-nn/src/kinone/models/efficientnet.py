"""EfficientNet-B0 .. B7 (Tan and Le, "EfficientNet: Rethinking Model Scaling for
Convolutional Neural Networks", 2019), module for module, name for name and parameter for
parameter as torchvision's `efficientnet_b*`.

The paper's Table 1 (the B0 baseline) is `EFFICIENTNET_B0_STAGES`; each variant scales its
channels by a width multiplier (rounded to multiples of 8) and its block counts by a depth
multiplier (rounded up), `EFFICIENTNET_SCALING`. The module tree:

    features.0        Conv2dNormActivation(in_channels -> stem, 3x3/2) + SiLU
    features.1 .. 7   one Sequential of MBConv blocks per stage row
    features.8        Conv2dNormActivation(last -> 4·last, 1x1) + SiLU
    avgpool           global average pooling
    classifier        Sequential(Dropout(p), Linear(4·last, num_classes))

An MBConv block is `block = Sequential([expand 1x1 + SiLU,] depthwise kxk + SiLU,
SqueezeExcitation, project 1x1)` (the expand conv only when expand_ratio != 1, which shifts
the indices: `features.1.0.block.1.fc1.weight` but `features.2.0.block.2.fc1.weight`), plus a
`stochastic_depth` module; the residual connection, and with it stochastic depth, exists only
where the block keeps the shape (stride 1, same channels).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from kinone import nn
from kinone.autograd import Tensor, default_generator

from .registry import register_model
from .weights import load_weights


def _make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """The multiple of `divisor` nearest to v (at least `min_value`), bumped up one step if
    rounding lost more than 10% (the TensorFlow reference's channel rounding)."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


# ---------------------------------------------------------------------------- building blocks
class Conv2dNormActivation(nn.Sequential):
    """Conv2d (padding (k-1)//2·dilation, bias only without a norm layer), then the norm layer
    and the activation when given: children "0", "1", "2" as torchvision's."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        norm_layer: Callable | None = nn.BatchNorm2d,
        activation_layer: Callable | None = nn.ReLU,
        dilation: int = 1,
        inplace: bool | None = True,
        bias: bool | None = None,
    ):
        if padding is None:
            padding = (kernel_size - 1) // 2 * dilation
        if bias is None:
            bias = norm_layer is None
        layers = [
            nn.Conv2d(
                in_channels, out_channels, kernel_size, stride, padding, dilation=dilation, groups=groups, bias=bias
            )
        ]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation_layer is not None:
            layers.append(activation_layer(**({} if inplace is None else {"inplace": inplace})))
        super().__init__(*layers)
        self.out_channels = out_channels


class SqueezeExcitation(nn.Module):
    """Channel attention: y = x · σ(fc2(δ(fc1(avgpool(x))))), with fc1 and fc2 1x1
    convolutions with bias (δ = `activation`, σ = `scale_activation`)."""

    def __init__(
        self,
        input_channels: int,
        squeeze_channels: int,
        activation: Callable = nn.ReLU,
        scale_activation: Callable = nn.Sigmoid,
    ):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def forward(self, x):
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


def stochastic_depth(x: Tensor, p: float, mode: str, training: bool = True) -> Tensor:
    """Randomly drop a residual branch (Huang et al. 2016): in training, y = x · m / (1 - p)
    with m ~ Bernoulli(1 - p) drawn once per sample ("row": m of shape (N, 1, 1, ...)) or once
    for the whole batch ("batch"); y = x when not training or p = 0.

    The mask comes from the generator of x's device (`kinone.autograd.default_generator(x.device)`)
    and multiplies x as a constant tensor on that device, so the gradient is the same mask:
    dL/dx = g · m / (1 - p).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"stochastic_depth: drop probability has to be between 0 and 1, but got {p}")
    if mode not in ("batch", "row"):
        raise ValueError(f"stochastic_depth: mode has to be either 'batch' or 'row', but got {mode!r}")
    if not training or p == 0.0:
        return x
    survival_rate = 1.0 - p
    size = (x.shape[0],) + (1,) * (x.ndim - 1) if mode == "row" else (1,) * x.ndim
    mask = (default_generator(x.device).random(size) < survival_rate).astype(x.dtype)
    if survival_rate > 0.0:
        mask /= x.dtype.type(survival_rate)
    return x * Tensor(mask)


class StochasticDepth(nn.Module):
    """`stochastic_depth(x, p, mode, self.training)` as a module (no parameters)."""

    def __init__(self, p: float, mode: str):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x):
        return stochastic_depth(x, self.p, self.mode, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"


# ---------------------------------------------------------------------------- MBConv
@dataclass
class MBConvConfig:
    """One row of the stage table, scaled: channels by `width_mult` (multiples of 8), the
    number of blocks by `depth_mult` (rounded up)."""

    expand_ratio: float
    kernel: int
    stride: int
    input_channels: int
    out_channels: int
    num_layers: int

    @staticmethod
    def adjust_channels(channels: int, width_mult: float, min_value: int | None = None) -> int:
        return _make_divisible(channels * width_mult, 8, min_value)

    @staticmethod
    def adjust_depth(num_layers: int, depth_mult: float) -> int:
        return int(math.ceil(num_layers * depth_mult))

    @classmethod
    def scaled(
        cls,
        expand_ratio,
        kernel,
        stride,
        input_channels,
        out_channels,
        num_layers,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
    ) -> MBConvConfig:
        return cls(
            expand_ratio,
            kernel,
            stride,
            cls.adjust_channels(input_channels, width_mult),
            cls.adjust_channels(out_channels, width_mult),
            cls.adjust_depth(num_layers, depth_mult),
        )


class MBConv(nn.Module):
    """Mobile inverted bottleneck with squeeze-and-excitation:
    y = x + StochasticDepth(project(SE(depthwise(expand(x))))) when stride 1 and the channels
    are kept, else y = project(SE(depthwise(expand(x)))).

    The squeeze width is a quarter of the block's *input* channels (not of the expanded ones).
    """

    def __init__(
        self,
        cnf: MBConvConfig,
        stochastic_depth_prob: float,
        norm_layer: Callable,
        se_layer: Callable = SqueezeExcitation,
    ):
        super().__init__()
        if not 1 <= cnf.stride <= 2:
            raise ValueError(f"MBConv: illegal stride value {cnf.stride}")
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
        layers: list[nn.Module] = []
        expanded_channels = cnf.adjust_channels(cnf.input_channels, cnf.expand_ratio)
        if expanded_channels != cnf.input_channels:
            layers.append(
                Conv2dNormActivation(
                    cnf.input_channels,
                    expanded_channels,
                    kernel_size=1,
                    norm_layer=norm_layer,
                    activation_layer=nn.SiLU,
                )
            )
        layers.append(
            Conv2dNormActivation(
                expanded_channels,
                expanded_channels,
                kernel_size=cnf.kernel,
                stride=cnf.stride,
                groups=expanded_channels,
                norm_layer=norm_layer,
                activation_layer=nn.SiLU,
            )
        )
        squeeze_channels = max(1, cnf.input_channels // 4)
        layers.append(se_layer(expanded_channels, squeeze_channels, activation=partial(nn.SiLU, inplace=True)))
        layers.append(
            Conv2dNormActivation(
                expanded_channels, cnf.out_channels, kernel_size=1, norm_layer=norm_layer, activation_layer=None
            )
        )
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob, "row")
        self.out_channels = cnf.out_channels

    def forward(self, x):
        result = self.block(x)
        if self.use_res_connect:
            result = self.stochastic_depth(result) + x
        return result


# ---------------------------------------------------------------------------- EfficientNet
class EfficientNet(nn.Module):
    """Stem, the stages of MBConv blocks, a 1x1 head conv, pooling, dropout and a classifier.

    Args mirror torchvision's `EfficientNet` (plus `in_channels`): `inverted_residual_setting`
    (list of `MBConvConfig`, one per stage), `dropout` (before the classifier),
    `stochastic_depth_prob` (the last block's drop probability approaches it: block i of n
    drops its branch with probability `stochastic_depth_prob · i / n`, counting from 0 over
    all stages), `num_classes`, `norm_layer` (default BatchNorm2d), `last_channel` (head
    width; default 4x the last stage's), `in_channels` (of the stem conv).

    Initialisation as torchvision: convolutions kaiming-normal with fan_out (bias 0), BN
    weight 1 and bias 0, the classifier U(±1/√num_classes) with bias 0.
    """

    def __init__(
        self,
        inverted_residual_setting: Sequence[MBConvConfig],
        dropout: float,
        stochastic_depth_prob: float = 0.2,
        num_classes: int = 1000,
        norm_layer: Callable | None = None,
        last_channel: int | None = None,
        in_channels: int = 3,
    ):
        super().__init__()
        if not inverted_residual_setting:
            raise ValueError("EfficientNet: the inverted_residual_setting should not be empty")
        if not all(isinstance(s, MBConvConfig) for s in inverted_residual_setting):
            raise TypeError("EfficientNet: the inverted_residual_setting should be a list of MBConvConfig")
        norm_layer = norm_layer or nn.BatchNorm2d
        self.in_channels = in_channels

        layers: list[nn.Module] = [
            Conv2dNormActivation(
                in_channels,
                inverted_residual_setting[0].input_channels,
                kernel_size=3,
                stride=2,
                norm_layer=norm_layer,
                activation_layer=nn.SiLU,
            )
        ]
        total_stage_blocks = sum(cnf.num_layers for cnf in inverted_residual_setting)
        stage_block_id = 0
        for cnf in inverted_residual_setting:
            stage: list[nn.Module] = []
            for index in range(cnf.num_layers):
                # Only a stage's first block changes the channels and the resolution.
                block_cnf = (
                    cnf
                    if index == 0
                    else MBConvConfig(
                        cnf.expand_ratio, cnf.kernel, 1, cnf.out_channels, cnf.out_channels, cnf.num_layers
                    )
                )
                sd_prob = stochastic_depth_prob * float(stage_block_id) / total_stage_blocks
                stage.append(MBConv(block_cnf, sd_prob, norm_layer))
                stage_block_id += 1
            layers.append(nn.Sequential(*stage))
        lastconv_input_channels = inverted_residual_setting[-1].out_channels
        lastconv_output_channels = last_channel if last_channel is not None else 4 * lastconv_input_channels
        layers.append(
            Conv2dNormActivation(
                lastconv_input_channels,
                lastconv_output_channels,
                kernel_size=1,
                norm_layer=norm_layer,
                activation_layer=nn.SiLU,
            )
        )
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout, inplace=True), nn.Linear(lastconv_output_channels, num_classes)
        )

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                init_range = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -init_range, init_range)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.avgpool(self.features(x)).flatten(1)
        return self.classifier(x)


# Tan & Le 2019, Table 1 (EfficientNet-B0), one row per stage after the stem:
# (expand_ratio, kernel, stride, input_channels, out_channels, num_layers)
EFFICIENTNET_B0_STAGES = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
]


@dataclass(frozen=True)
class Scaling:
    width_mult: float
    depth_mult: float
    dropout: float
    resolution: int  # the paper's input resolution (informative: the model accepts any size)
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1


# Compound scaling per variant: the paper's multipliers and resolutions, torchvision's dropout;
# B5-B7 use BatchNorm2d(eps=1e-3, momentum=0.01), as torchvision (their weights were trained so).
EFFICIENTNET_SCALING = {
    "efficientnet_b0": Scaling(1.0, 1.0, 0.2, 224),
    "efficientnet_b1": Scaling(1.0, 1.1, 0.2, 240),
    "efficientnet_b2": Scaling(1.1, 1.2, 0.3, 260),
    "efficientnet_b3": Scaling(1.2, 1.4, 0.3, 300),
    "efficientnet_b4": Scaling(1.4, 1.8, 0.4, 380),
    "efficientnet_b5": Scaling(1.6, 2.2, 0.4, 456, bn_eps=1e-3, bn_momentum=0.01),
    "efficientnet_b6": Scaling(1.8, 2.6, 0.5, 528, bn_eps=1e-3, bn_momentum=0.01),
    "efficientnet_b7": Scaling(2.0, 3.1, 0.5, 600, bn_eps=1e-3, bn_momentum=0.01),
}


def efficientnet_config(name: str) -> list[MBConvConfig]:
    """The stage table of variant `name`, scaled by its width and depth multipliers."""
    s = EFFICIENTNET_SCALING[name]
    return [
        MBConvConfig.scaled(*row, width_mult=s.width_mult, depth_mult=s.depth_mult) for row in EFFICIENTNET_B0_STAGES
    ]


def _efficientnet(name: str, weights, num_classes: int, in_channels: int, **kwargs) -> EfficientNet:
    s = EFFICIENTNET_SCALING[name]
    kwargs.setdefault("dropout", s.dropout)
    if (s.bn_eps, s.bn_momentum) != (1e-5, 0.1):
        kwargs.setdefault("norm_layer", partial(nn.BatchNorm2d, eps=s.bn_eps, momentum=s.bn_momentum))
    model = EfficientNet(efficientnet_config(name), num_classes=num_classes, in_channels=in_channels, **kwargs)
    if weights is not None:
        load_weights(model, weights)
    return model


@register_model
def efficientnet_b0(*, weights=None, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> EfficientNet:
    """EfficientNet-B0: width 1.0, depth 1.0, dropout 0.2; 5,288,548 parameters at 1000 classes.

    `weights`: a path to an `.npz` state dict (see `kinone.models.convert`) loaded strictly;
    3-channel weights load into `in_channels=1` by summing the stem conv's kernel over its
    input channels (`kinone.models.adapt_input_conv`). Other keyword arguments (`dropout`,
    `stochastic_depth_prob`, `norm_layer`, `last_channel`) go to `EfficientNet`.
    """
    return _efficientnet("efficientnet_b0", weights, num_classes, in_channels, **kwargs)


@register_model
def efficientnet_b1(*, weights=None, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> EfficientNet:
    """EfficientNet-B1: width 1.0, depth 1.1, dropout 0.2; 7,794,184 parameters (arguments as B0)."""
    return _efficientnet("efficientnet_b1", weights, num_classes, in_channels, **kwargs)


@register_model
def efficientnet_b2(*, weights=None, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> EfficientNet:
    """EfficientNet-B2: width 1.1, depth 1.2, dropout 0.3; 9,109,994 parameters (arguments as B0)."""
    return _efficientnet("efficientnet_b2", weights, num_classes, in_channels, **kwargs)


@register_model
def efficientnet_b3(*, weights=None, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> EfficientNet:
    """EfficientNet-B3: width 1.2, depth 1.4, dropout 0.3; 12,233,232 parameters (arguments as B0)."""
    return _efficientnet("efficientnet_b3", weights, num_classes, in_channels, **kwargs)


@register_model
def efficientnet_b4(*, weights=None, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> EfficientNet:
    """EfficientNet-B4: width 1.4, depth 1.8, dropout 0.4; 19,341,616 parameters (arguments as B0)."""
    return _efficientnet("efficientnet_b4", weights, num_classes, in_channels, **kwargs)


@register_model
def efficientnet_b5(*, weights=None, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> EfficientNet:
    """EfficientNet-B5: width 1.6, depth 2.2, dropout 0.4, BatchNorm2d(eps=1e-3, momentum=0.01);
    30,389,784 parameters (arguments as B0)."""
    return _efficientnet("efficientnet_b5", weights, num_classes, in_channels, **kwargs)


@register_model
def efficientnet_b6(*, weights=None, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> EfficientNet:
    """EfficientNet-B6: width 1.8, depth 2.6, dropout 0.5, BatchNorm2d(eps=1e-3, momentum=0.01);
    43,040,704 parameters (arguments as B0)."""
    return _efficientnet("efficientnet_b6", weights, num_classes, in_channels, **kwargs)


@register_model
def efficientnet_b7(*, weights=None, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> EfficientNet:
    """EfficientNet-B7: width 2.0, depth 3.1, dropout 0.5, BatchNorm2d(eps=1e-3, momentum=0.01);
    66,347,960 parameters (arguments as B0)."""
    return _efficientnet("efficientnet_b7", weights, num_classes, in_channels, **kwargs)
