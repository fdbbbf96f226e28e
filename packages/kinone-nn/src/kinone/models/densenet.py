"""DenseNet-121/161/169/201 (Huang et al., "Densely Connected Convolutional Networks", 2017),
module for module, name for name and parameter for parameter as torchvision's `densenet*`.
DenseNet-121 is CheXNet's network (Rajpurkar et al. 2017) for the NIH chest X-rays.

The paper's Table 1 is `DENSENET_CONFIGS`: a growth rate k, the number of layers of each of
the four dense blocks and the stem width. Each layer of a block sees the concatenation of
the block's input and every earlier layer's k new channels ("DenseNet-BC": a 1x1 bottleneck
to bn_size·k channels, then a 3x3 conv to k), and a transition between blocks halves the
channels (1x1 conv) and the resolution (2x2 average pooling).

    features.conv0 7x7/2 - norm0 - relu0 - pool0 3x3/2
    features.denseblock1 (denselayer1 .. denselayerN: norm1 relu1 conv1 norm2 relu2 conv2)
    features.transition1 (norm relu conv pool) .. denseblock4 - features.norm5
    relu - global average pooling - flatten - classifier

Keys read `features.conv0.weight`, `features.denseblock1.denselayer1.norm1.running_mean`,
`features.transition3.conv.weight`, `features.norm5.num_batches_tracked`, `classifier.bias`,
... in torchvision's order. torchvision's published checkpoints predate these names
(`denselayer1.norm.1.weight`): `remap_legacy_keys` renames them as torchvision does when it
loads them, and the builders apply it to `weights`.

Memory. Layer i of a block needs cat(x₀, f₁, ..., f_{i-1}); concatenating afresh for every
layer copies O(L²) channels per block, and autograd keeps every one of those concatenations
alive (batch norm saves its input), so a training step holds O(L²) activations for the
concatenations alone. In training (grad mode on), a dense block therefore allocates its whole
output once, (N, C₀ + L·k, H, W), and `GrowChannels` writes each layer's k new channels into
their slice, returning the view of the channels filled so far as the next layer's input:
each concatenation costs a copy of k channels and no memory of its own, and the views that
batch norm saves all share the one buffer. The math and the gradients are cat's. Under
`no_grad` nothing is saved, so plain `cat` (freed layer by layer) is used, which is also what
the ONNX exporter traces (a Concat node).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from kinone import nn
from kinone.autograd import Function, backend, cat, is_grad_enabled
from kinone.nn import functional as F

from .registry import register_model
from .weights import load_weights


class GrowChannels(Function):
    """y = cat(x, f) along dim 1, written into `buffer` (y is the view buffer[:, :C + k] for x
    of C channels and f of k);  dL/dx = g[:, :C],  dL/df = g[:, C:].

    The buffer is the dense block's preallocated output; x is the view this op returned for the
    previous layer (already in place: only f is copied), or, with `copy_input=True`, the block's
    input (copied into the first C channels). Later calls write only channels past C + k, so
    the views handed out, and saved by other ops for backward, never change.
    """

    @staticmethod
    def forward(ctx, x, f, buffer=None, copy_input=False):
        channels, new = x.shape[1], f.shape[1]
        if (x.shape[0],) + x.shape[2:] != (f.shape[0],) + f.shape[2:] or x.dtype != f.dtype:
            raise ValueError(
                f"GrowChannels: new features {f.shape} {f.dtype} do not match the block's {x.shape} "
                f"{x.dtype} outside dim 1"
            )
        if (
            (buffer.shape[0],) + buffer.shape[2:] != (x.shape[0],) + x.shape[2:]
            or buffer.shape[1] < channels + new
            or buffer.dtype != x.dtype
        ):
            raise ValueError(
                f"GrowChannels: buffer {buffer.shape} {buffer.dtype} cannot hold {channels} + {new} "
                f"channels of {x.shape} {x.dtype}"
            )
        if copy_input:
            buffer[:, :channels] = x
        buffer[:, channels : channels + new] = f
        ctx.channels = channels
        return buffer[:, : channels + new]

    @staticmethod
    def backward(ctx, grad):
        return grad[:, : ctx.channels], grad[:, ctx.channels :]


class _DenseLayer(nn.Module):
    """One layer of a dense block (DenseNet-BC): a 1x1 bottleneck to bn_size·k channels and a
    3x3 conv to k new channels, each after batch norm and ReLU, then dropout (drop_rate):
    f = drop(conv2(relu2(norm2(conv1(relu1(norm1(x))))))), x the concatenation so far.

    The class name is torchvision's (the module trees compare equal)."""

    def __init__(
        self, num_input_features: int, growth_rate: int, bn_size: int, drop_rate: float, memory_efficient: bool = False
    ):
        super().__init__()
        _check_memory_efficient(memory_efficient)
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, kernel_size=1, stride=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, stride=1, padding=1, bias=False)
        self.drop_rate = float(drop_rate)
        self.memory_efficient = memory_efficient

    def forward(self, x):
        if isinstance(x, (list, tuple)):  # torchvision's calling form: the list of features so far
            x = cat(list(x), 1)
        bottleneck = self.conv1(self.relu1(self.norm1(x)))
        new_features = self.conv2(self.relu2(self.norm2(bottleneck)))
        return F.dropout(new_features, p=self.drop_rate, training=self.training)


class _DenseBlock(nn.ModuleDict):
    """`num_layers` dense layers `denselayer1..N`; the output is the block's input followed by
    every layer's k new channels (C₀ + N·k channels), built in one buffer when recording a
    graph (see the module docstring)."""

    def __init__(
        self,
        num_layers: int,
        num_input_features: int,
        bn_size: int,
        growth_rate: int,
        drop_rate: float,
        memory_efficient: bool = False,
    ):
        super().__init__()
        for i in range(num_layers):
            layer = _DenseLayer(
                num_input_features + i * growth_rate,
                growth_rate=growth_rate,
                bn_size=bn_size,
                drop_rate=drop_rate,
                memory_efficient=memory_efficient,
            )
            self.add_module(f"denselayer{i + 1}", layer)
        self.num_input_features, self.growth_rate = num_input_features, growth_rate

    def forward(self, x):
        layers = list(self.values())
        if not is_grad_enabled():
            for layer in layers:
                x = cat([x, layer(x)], 1)
            return x
        n, _, height, width = x.shape
        total = x.shape[1] + sum(layer.conv2.out_channels for layer in layers)
        buffer = backend.get_array_module(x.data).empty((n, total, height, width), dtype=x.dtype)
        for index, layer in enumerate(layers):
            x = GrowChannels.apply(x, layer(x), buffer=buffer, copy_input=index == 0)
        return x


class _Transition(nn.Sequential):
    """Between dense blocks: norm, relu, a 1x1 conv to `num_output_features`, 2x2 average pooling."""

    def __init__(self, num_input_features: int, num_output_features: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(num_input_features, num_output_features, kernel_size=1, stride=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


def _check_memory_efficient(memory_efficient) -> None:
    if memory_efficient:
        raise ValueError(
            "DenseNet: memory_efficient=True (torchvision's gradient checkpointing of each layer's bottleneck) "
            "is not implemented; use memory_efficient=False: a dense block already writes its concatenations "
            "into one shared buffer"
        )


class DenseNet(nn.Module):
    """A stem, four dense blocks with transitions between them, a final batch norm, ReLU,
    global average pooling and a linear classifier.

    Args mirror torchvision's `DenseNet` (plus `in_channels`): `growth_rate` (k, the channels
    each layer adds), `block_config` (layers per block), `num_init_features` (stem width),
    `bn_size` (bottleneck width as a multiple of k), `drop_rate` (dropout after each layer),
    `num_classes`, `memory_efficient` (torchvision's checkpointing flag: only False is
    accepted; the shared concatenation buffer is always used), `in_channels` (of `conv0`).

    Initialisation as torchvision: convolutions kaiming-normal (fan_in, gain √2), BN weight 1
    and bias 0, the classifier PyTorch's default Linear weight with bias 0.
    """

    def __init__(
        self,
        growth_rate: int = 32,
        block_config: tuple = (6, 12, 24, 16),
        num_init_features: int = 64,
        bn_size: int = 4,
        drop_rate: float = 0.0,
        num_classes: int = 1000,
        memory_efficient: bool = False,
        in_channels: int = 3,
    ):
        super().__init__()
        _check_memory_efficient(memory_efficient)
        self.in_channels = in_channels
        self.features = nn.Sequential(
            OrderedDict(
                [
                    (
                        "conv0",
                        nn.Conv2d(in_channels, num_init_features, kernel_size=7, stride=2, padding=3, bias=False),
                    ),
                    ("norm0", nn.BatchNorm2d(num_init_features)),
                    ("relu0", nn.ReLU(inplace=True)),
                    ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
                ]
            )
        )
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            block = _DenseBlock(
                num_layers,
                num_features,
                bn_size=bn_size,
                growth_rate=growth_rate,
                drop_rate=drop_rate,
                memory_efficient=memory_efficient,
            )
            self.features.add_module(f"denseblock{i + 1}", block)
            num_features += num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", _Transition(num_features, num_features // 2))
                num_features //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.classifier = nn.Linear(num_features, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        features = self.features(x)
        out = F.adaptive_avg_pool2d(F.relu(features), (1, 1)).flatten(1)
        return self.classifier(out)


# Huang et al. 2017, Table 1 (and torchvision): growth rate k, layers per dense block, stem width.
DENSENET_CONFIGS = {
    "densenet121": (32, (6, 12, 24, 16), 64),
    "densenet161": (48, (6, 12, 36, 24), 96),
    "densenet169": (32, (6, 12, 32, 32), 64),
    "densenet201": (32, (6, 12, 48, 32), 64),
}

# torchvision's checkpoints name a dense layer's modules `norm.1`, `relu.1`, `conv.2`, ...
# (older PyTorch allowed dots in module names); torchvision renames them on load with this pattern.
_LEGACY_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def remap_legacy_keys(state_dict: Mapping) -> OrderedDict:
    """A copy of `state_dict` with torchvision's old dense-layer keys renamed as torchvision
    does on load (`features.denseblock1.denselayer1.norm.1.weight` ->
    `...denselayer1.norm1.weight`), other keys and the order unchanged. Those files also
    predate batch norm's `num_batches_tracked`: a norm with running statistics but no counter
    gets one, 0 (int64), after its `running_var`, as PyTorch's BatchNorm does for them."""
    out: OrderedDict = OrderedDict()
    for key, value in state_dict.items():
        match = _LEGACY_KEY.match(key)
        key = match.group(1) + match.group(2) if match else key
        out[key] = value
        if key.endswith(".running_var"):
            counter = key[: -len("running_var")] + "num_batches_tracked"
            if counter not in state_dict:
                out[counter] = np.zeros((), dtype=np.int64)
    return out


def _densenet(name: str, weights, num_classes: int, in_channels: int, **kwargs) -> DenseNet:
    growth_rate, block_config, num_init_features = DENSENET_CONFIGS[name]
    model = DenseNet(
        growth_rate, block_config, num_init_features, num_classes=num_classes, in_channels=in_channels, **kwargs
    )
    if weights is not None:
        source = None if isinstance(weights, Mapping) else weights
        try:
            load_weights(model, remap_legacy_keys(nn.load(weights) if source is not None else weights))
        except RuntimeError as error:
            if source is None:
                raise
            raise RuntimeError(f"loading weights from {source}: {error}") from error
    return model


@register_model
def densenet121(*, weights=None, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> DenseNet:
    """DenseNet-121: k = 32, blocks (6, 12, 24, 16), stem 64; 7,978,856 parameters at 1000
    classes (CheXNet's network).

    `weights`: a path to an `.npz` state dict (see `kinone.models.convert`; torchvision's old
    `norm.1`-style keys are renamed by `remap_legacy_keys`) loaded strictly; 3-channel weights
    load into `in_channels=1` by summing `conv0`'s kernel over its input channels
    (`kinone.models.adapt_input_conv`). Other keyword arguments (`bn_size`, `drop_rate`,
    `memory_efficient`) go to `DenseNet`.
    """
    return _densenet("densenet121", weights, num_classes, in_channels, **kwargs)


@register_model
def densenet161(*, weights=None, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> DenseNet:
    """DenseNet-161: k = 48, blocks (6, 12, 36, 24), stem 96; 28,681,000 parameters (arguments as densenet121)."""
    return _densenet("densenet161", weights, num_classes, in_channels, **kwargs)


@register_model
def densenet169(*, weights=None, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> DenseNet:
    """DenseNet-169: k = 32, blocks (6, 12, 32, 32), stem 64; 14,149,480 parameters (arguments as densenet121)."""
    return _densenet("densenet169", weights, num_classes, in_channels, **kwargs)


@register_model
def densenet201(*, weights=None, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> DenseNet:
    """DenseNet-201: k = 32, blocks (6, 12, 48, 32), stem 64; 20,013,928 parameters (arguments as densenet121)."""
    return _densenet("densenet201", weights, num_classes, in_channels, **kwargs)
