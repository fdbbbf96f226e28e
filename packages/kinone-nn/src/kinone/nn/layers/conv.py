"""Convolution layers: Conv1d, Conv2d and ConvTranspose2d, with PyTorch's arguments,
attributes, parameter shapes and initialisation."""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .. import init
from ..functional.arguments import ntuple
from ..module import Module
from ..parameter import Parameter

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    """What the convolution layers share: checked arguments stored as tuples (padding may be
    'valid' or 'same'), the weight (out, in / groups, *kernel) or, transposed,
    (in, out / groups, *kernel), the bias (out,), and PyTorch's initialisation:
    weight ~ kaiming_uniform(a=√5), bias ~ U(-1/√fan_in, 1/√fan_in)."""

    def __init__(
        self,
        name,
        dims,
        in_channels,
        out_channels,
        kernel_size,
        stride,
        padding,
        dilation,
        groups,
        bias,
        padding_mode,
        dtype,
        transposed=False,
        output_padding=0,
    ):
        super().__init__()
        if groups <= 0 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) must be divisible by "
                f"groups ({groups}), a positive int"
            )
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        if transposed and padding_mode != "zeros":
            raise ValueError(f'{name}: only "zeros" padding mode is supported, got {padding_mode!r}')
        if isinstance(padding, str) and padding_mode != "zeros":
            raise ValueError(f"{name}: padding={padding!r} is supported with padding_mode='zeros' only")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = ntuple(kernel_size, dims, "kernel_size", name)
        self.stride = ntuple(stride, dims, "stride", name)
        self.padding = padding if isinstance(padding, str) else ntuple(padding, dims, "padding", name)
        self.dilation = ntuple(dilation, dims, "dilation", name)
        self.transposed = transposed
        self.output_padding = ntuple(output_padding, dims, "output_padding", name)
        self.padding_mode = padding_mode
        shape = (in_channels, out_channels // groups) if transposed else (out_channels, in_channels // groups)
        self.weight = Parameter(np.empty((*shape, *self.kernel_size), dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def _padded(self, x):
        """x padded by padding_mode (then the conv itself pads nothing), or x for 'zeros'."""
        if self.padding_mode == "zeros":
            return x, self.padding
        widths = tuple(p for p in reversed(self.padding) for _ in range(2))
        return F.pad(x, widths, mode=self.padding_mode), 0

    def extra_repr(self) -> str:
        dims = len(self.kernel_size)
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * dims:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * dims:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * dims:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv1d(_ConvNd):
    """1-D cross-correlation over (N, C, L) inputs; weight (out, in / groups, k)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        dtype=np.float32,
    ):
        super().__init__(
            "Conv1d",
            1,
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            dtype,
        )

    def forward(self, x):
        x, padding = self._padded(x)
        return F.conv1d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


class Conv2d(_ConvNd):
    """2-D cross-correlation over (N, C, H, W) inputs; weight (out, in / groups, kh, kw)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        dtype=np.float32,
    ):
        super().__init__(
            "Conv2d",
            2,
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            dtype,
        )

    def forward(self, x):
        x, padding = self._padded(x)
        return F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution over (N, C, H, W) inputs; weight (in, out / groups, kh, kw).
    forward(x, output_size=None): output_size (the last two dims, or the whole shape) picks
    output_padding, as PyTorch."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        output_padding=0,
        groups: int = 1,
        bias: bool = True,
        dilation=1,
        padding_mode: str = "zeros",
        dtype=np.float32,
    ):
        if isinstance(padding, str):
            raise TypeError(f"ConvTranspose2d: padding must be an int or a pair of ints, got {padding!r}")
        super().__init__(
            "ConvTranspose2d",
            2,
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            dtype,
            transposed=True,
            output_padding=output_padding,
        )

    def forward(self, x, output_size=None):
        output_padding = self.output_padding if output_size is None else self._output_padding(x, output_size)
        return F.conv_transpose2d(
            x, self.weight, self.bias, self.stride, self.padding, output_padding, self.groups, self.dilation
        )

    def _output_padding(self, x, output_size):
        """The output_padding that gives `output_size`, which must lie within one stride of the smallest size."""
        size = tuple(output_size)[-2:]
        padding = []
        for k, (length, wanted) in enumerate(zip(x.shape[-2:], size, strict=True)):
            smallest = (
                (length - 1) * self.stride[k] - 2 * self.padding[k] + self.dilation[k] * (self.kernel_size[k] - 1) + 1
            )
            largest = smallest + self.stride[k] - 1
            if not smallest <= wanted <= largest:
                raise ValueError(
                    f"ConvTranspose2d: requested an output size of {size}, but valid sizes range from "
                    f"{smallest} to {largest} (for an input of {tuple(x.shape[-2:])})"
                )
            padding.append(wanted - smallest)
        return tuple(padding)
