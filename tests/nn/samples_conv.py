"""Gradcheck samples: conv2d (im2col + GEMM path, both input-gradient routes, depthwise path)."""

import numpy as np

from kinone.nn import functional as F
from kinone.nn.functional.conv import Conv2d

rng = np.random.default_rng(11)


def r(*shape):
    return rng.standard_normal(shape)


SAMPLES = {
    Conv2d: [
        # 3x3, padding 1, with bias (stride 1: input gradient as a flipped-kernel convolution)
        (lambda x, w, b: F.conv2d(x, w, b, padding=1), [r(2, 3, 5, 6), r(4, 3, 3, 3), r(4)]),
        # stride 2, non-square kernel, asymmetric padding, no bias (col2im route)
        (lambda x, w: F.conv2d(x, w, stride=2, padding=(1, 2)), [r(2, 2, 6, 5), r(3, 2, 2, 3)]),
        # stride (2, 1) and dilation 2
        (lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=2, dilation=2), [r(1, 2, 7, 6), r(3, 2, 3, 3), r(3)]),
        # dilation (1, 2) at stride 1
        (lambda x, w: F.conv2d(x, w, padding=1, dilation=(1, 2)), [r(1, 2, 5, 7), r(2, 2, 3, 3)]),
        # groups=2, 4 -> 6 channels
        (lambda x, w, b: F.conv2d(x, w, b, padding=1, groups=2), [r(2, 4, 5, 5), r(6, 2, 3, 3), r(6)]),
        # 1x1, stride 1, no padding: the input is its own columns
        (lambda x, w, b: F.conv2d(x, w, b), [r(2, 4, 3, 4), r(5, 4, 1, 1), r(5)]),
        # 1x1 with stride 2 (col2im) and 1x1 with padding beyond the kernel's reach (col2im at stride 1)
        (lambda x, w: F.conv2d(x, w, stride=2), [r(2, 3, 5, 5), r(2, 3, 1, 1)]),
        (lambda x, w: F.conv2d(x, w, padding=1), [r(1, 3, 3, 3), r(2, 3, 1, 1)]),
        # depthwise 3x3, padding 1, with bias
        (lambda x, w, b: F.conv2d(x, w, b, padding=1, groups=3), [r(2, 3, 6, 6), r(3, 1, 3, 3), r(3)]),
        # depthwise, stride 2 (four phases), non-square kernel, dilation 2
        (
            lambda x, w: F.conv2d(x, w, stride=2, padding=(1, 2), dilation=(1, 2), groups=3),
            [r(2, 3, 7, 8), r(3, 1, 3, 2)],
        ),
        # depthwise with channel multiplier 3, stride (1, 2)
        (lambda x, w, b: F.conv2d(x, w, b, stride=(1, 2), padding=1, groups=2), [r(2, 2, 5, 6), r(6, 1, 3, 3), r(6)]),
        # depthwise, stride 3, 5x5 kernel
        (lambda x, w: F.conv2d(x, w, stride=3, padding=2, groups=2), [r(1, 2, 8, 7), r(2, 1, 5, 5)]),
    ],
}
