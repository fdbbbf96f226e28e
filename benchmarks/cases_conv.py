"""Group `conv`: convolution and pooling, float32, against torch.nn.functional.

Each build function receives `fw` (`kinone.autograd` or `torch`) and takes the functional
module that goes with it (`kinone.nn.functional` or `torch.nn.functional`); both spell
conv2d and max_pool2d the same way.

The forward + backward cases take the loss Σ y·r for a fixed random r, so that backward
starts from a dense gradient, as it does behind a batch norm in a real network (a plain
y.sum() would hand both frameworks a broadcast gradient of ones instead).
"""

from __future__ import annotations

import numpy as np
from case import Case  # benchmarks/case.py: run.py puts its own folder on sys.path

BATCH = 16
SIZE = 32


def functional(fw):
    """The functional namespace that belongs with `fw`."""
    if fw.__name__ == "torch":
        import torch.nn.functional as F
    else:
        from kinone.nn import functional as F
    return F


def _cotangent(fw, shape):
    """The fixed r of the loss Σ y·r."""
    return fw.tensor(np.random.default_rng(1).standard_normal(shape).astype(np.float32))


def _conv_inputs(fw, channels, out_channels, group_channels, requires_grad):
    rng = np.random.default_rng(0)
    x = fw.tensor(rng.standard_normal((BATCH, channels, SIZE, SIZE)).astype(np.float32), requires_grad=requires_grad)
    fan_in = group_channels * 9
    w = rng.standard_normal((out_channels, group_channels, 3, 3)) / np.sqrt(fan_in)
    weight = fw.tensor(w.astype(np.float32), requires_grad=requires_grad)
    bias = fw.tensor((0.1 * rng.standard_normal(out_channels)).astype(np.float32), requires_grad=requires_grad)
    return x, weight, bias


def conv3x3_forward(fw):
    """conv2d 3x3, N=16, 64->64 channels, 32x32, stride 1, padding 1, float32; forward only (no grad)."""
    F = functional(fw)
    x, weight, bias = _conv_inputs(fw, 64, 64, 64, requires_grad=False)

    def step():
        return F.conv2d(x, weight, bias, stride=1, padding=1).sum()

    return step


def conv3x3_forward_backward(fw):
    """conv2d 3x3, N=16, 64->64 channels, 32x32, stride 1, padding 1, float32; forward + backward."""
    F = functional(fw)
    x, weight, bias = _conv_inputs(fw, 64, 64, 64, requires_grad=True)
    r = _cotangent(fw, (BATCH, 64, SIZE, SIZE))

    def step():
        x.grad = weight.grad = bias.grad = None
        loss = (F.conv2d(x, weight, bias, stride=1, padding=1) * r).sum()
        loss.backward()
        return loss

    return step


def depthwise3x3_forward_backward(fw):
    """depthwise conv2d 3x3, N=16, 96 channels (groups=96), 32x32, padding 1, no bias, float32; forward + backward."""
    F = functional(fw)
    x, weight, _ = _conv_inputs(fw, 96, 96, 1, requires_grad=True)
    r = _cotangent(fw, (BATCH, 96, SIZE, SIZE))

    def step():
        x.grad = weight.grad = None
        loss = (F.conv2d(x, weight, None, stride=1, padding=1, groups=96) * r).sum()
        loss.backward()
        return loss

    return step


def max_pool3x3_forward_backward(fw):
    """max_pool2d 3x3, stride 2, padding 1 on (16, 64, 32, 32) float32; forward + backward."""
    F = functional(fw)
    rng = np.random.default_rng(0)
    x = fw.tensor(rng.standard_normal((BATCH, 64, SIZE, SIZE)).astype(np.float32), requires_grad=True)
    r = _cotangent(fw, (BATCH, 64, SIZE // 2, SIZE // 2))

    def step():
        x.grad = None
        loss = (F.max_pool2d(x, 3, 2, 1) * r).sum()
        loss.backward()
        return loss

    return step


CASES = [
    Case("conv3x3_64_forward", conv3x3_forward, unit="ms/iter"),
    Case("conv3x3_64_forward_backward", conv3x3_forward_backward, unit="ms/iter", target=2.0),
    Case("depthwise3x3_96_forward_backward", depthwise3x3_forward_backward, unit="ms/iter", target=3.0),
    Case("max_pool3x3_s2_forward_backward", max_pool3x3_forward_backward, unit="ms/iter", target=2.0),
]
