"""ResNet-18/34/50/101/152 (He et al., "Deep Residual Learning for Image Recognition", 2016),
module for module, name for name and parameter for parameter as torchvision's `resnet*`.

The paper's Table 1 is `RESNET_CONFIGS`: each variant is a block type and the number of blocks
in each of the four stages. Every stage doubles the width and (after the first) halves the
resolution; the stride sits on the 3x3 convolution of a stage's first block ("ResNet v1.5",
as torchvision and most checkpoints), and that block's shortcut is a 1x1 convolution with
batch norm (`downsample = Sequential(conv, bn)`) whenever the shape changes.

    conv1 7x7/2 - bn1 - relu - maxpool 3x3/2 - layer1 .. layer4 - avgpool - flatten - fc

Keys therefore read `conv1.weight`, `bn1.running_mean`, `layer2.0.downsample.0.weight`,
`layer4.1.bn2.num_batches_tracked`, `fc.bias`, ... in torchvision's order.
"""

from __future__ import annotations

from collections.abc import Callable

from kinone import nn

from .registry import register_model
from .weights import load_weights

# (stage width, stride of the stage's first block), the same for every variant.
STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution, padded to keep the size (at stride 1), without bias (a BN follows)."""
    return nn.Conv2d(
        in_planes,
        out_planes,
        kernel_size=3,
        stride=stride,
        padding=dilation,
        groups=groups,
        bias=False,
        dilation=dilation,
    )


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).

    ResNet-18 and -34. `conv1` carries the stride; `downsample` (or None) maps x to the
    output's shape.
    """

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: Callable | None = None,
    ):
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and base_width=64")
        if dilation > 1:
            raise NotImplementedError("BasicBlock: dilation > 1 is not supported")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (with the stride: v1.5), 1x1 expand to 4x planes, plus a shortcut:
    relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x)).

    ResNet-50, -101 and -152. `groups` and `base_width` give ResNeXt / wide ResNet widths.
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: Callable | None = None,
    ):
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """A stem, four stages of residual blocks, global average pooling and a linear classifier.

    Args mirror torchvision's `ResNet` (plus `in_channels`): `block` (BasicBlock or
    Bottleneck), `layers` (blocks per stage), `num_classes`, `zero_init_residual` (start each
    residual branch's last BN at weight 0, so that every block begins as the identity),
    `groups` and `width_per_group` (ResNeXt widths), `replace_stride_with_dilation` (three
    booleans for stages 2-4), `norm_layer` (default BatchNorm2d), `in_channels` (input
    channels of `conv1`; 1 for chest X-rays).

    Initialisation as torchvision: convolutions kaiming-normal with fan_out and the ReLU gain
    (std = √(2 / (out_channels·k·k))), BN weight 1 and bias 0, `fc` PyTorch's default Linear
    init.
    """

    def __init__(
        self,
        block: type,
        layers: list[int],
        num_classes: int = 1000,
        zero_init_residual: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
        replace_stride_with_dilation: list[bool] | None = None,
        norm_layer: Callable | None = None,
        in_channels: int = 3,
    ):
        super().__init__()
        if len(layers) != len(STAGES):
            raise ValueError(f"ResNet: layers must give the number of blocks of {len(STAGES)} stages, got {layers}")
        replace_stride_with_dilation = replace_stride_with_dilation or [False, False, False]
        if len(replace_stride_with_dilation) != 3:
            raise ValueError(
                f"ResNet: replace_stride_with_dilation should be None or 3 booleans, got {replace_stride_with_dilation}"
            )
        self._norm_layer = norm_layer or nn.BatchNorm2d
        self.inplanes, self.dilation = 64, 1
        self.groups, self.base_width, self.in_channels = groups, width_per_group, in_channels

        self.conv1 = nn.Conv2d(in_channels, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = self._norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        dilate = [False, *replace_stride_with_dilation]
        for index, ((planes, stride), blocks) in enumerate(zip(STAGES, layers, strict=True)):
            setattr(self, f"layer{index + 1}", self._make_layer(block, planes, blocks, stride, dilate[index]))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck) and m.bn3.weight is not None:
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock) and m.bn2.weight is not None:
                    nn.init.constant_(m.bn2.weight, 0)

    def _make_layer(
        self, block: type, planes: int, blocks: int, stride: int = 1, dilate: bool = False
    ) -> nn.Sequential:
        """One stage: `blocks` blocks of width `planes`, the first one with the stride and shortcut."""
        norm_layer = self._norm_layer
        downsample = None
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride), norm_layer(planes * block.expansion)
            )
        layers = [
            block(
                self.inplanes, planes, stride, downsample, self.groups, self.base_width, previous_dilation, norm_layer
            )
        ]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(
                block(
                    self.inplanes,
                    planes,
                    groups=self.groups,
                    base_width=self.base_width,
                    dilation=self.dilation,
                    norm_layer=norm_layer,
                )
            )
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x).flatten(1)
        return self.fc(x)


# He et al. 2016, Table 1: block type and blocks per stage (conv2_x .. conv5_x).
RESNET_CONFIGS = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
    "resnet152": (Bottleneck, [3, 8, 36, 3]),
}


def _resnet(name: str, weights, num_classes: int, in_channels: int, **kwargs) -> ResNet:
    block, layers = RESNET_CONFIGS[name]
    model = ResNet(block, layers, num_classes=num_classes, in_channels=in_channels, **kwargs)
    if weights is not None:
        load_weights(model, weights)
    return model


@register_model
def resnet18(*, weights=None, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> ResNet:
    """ResNet-18: BasicBlock x [2, 2, 2, 2]; 11,689,512 parameters at 1000 classes.

    `weights`: a path to an `.npz` state dict (see `kinone.models.convert`) loaded strictly;
    3-channel weights load into `in_channels=1` by summing `conv1`'s kernel over its input
    channels (`kinone.models.adapt_input_conv`). Other keyword arguments go to `ResNet`.
    """
    return _resnet("resnet18", weights, num_classes, in_channels, **kwargs)


@register_model
def resnet34(*, weights=None, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> ResNet:
    """ResNet-34: BasicBlock x [3, 4, 6, 3]; 21,797,672 parameters at 1000 classes (`weights` as resnet18)."""
    return _resnet("resnet34", weights, num_classes, in_channels, **kwargs)


@register_model
def resnet50(*, weights=None, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> ResNet:
    """ResNet-50: Bottleneck x [3, 4, 6, 3]; 25,557,032 parameters at 1000 classes (`weights` as resnet18)."""
    return _resnet("resnet50", weights, num_classes, in_channels, **kwargs)


@register_model
def resnet101(*, weights=None, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> ResNet:
    """ResNet-101: Bottleneck x [3, 4, 23, 3]; 44,549,160 parameters at 1000 classes (`weights` as resnet18)."""
    return _resnet("resnet101", weights, num_classes, in_channels, **kwargs)


@register_model
def resnet152(*, weights=None, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> ResNet:
    """ResNet-152: Bottleneck x [3, 8, 36, 3]; 60,192,808 parameters at 1000 classes (`weights` as resnet18)."""
    return _resnet("resnet152", weights, num_classes, in_channels, **kwargs)
