"""Gradcheck samples: max, average and adaptive average pooling.

Max-pool inputs are permutations of distinct values 0.01 apart, so no window has a tie and
finite differences of 1e-6 never change which element is the maximum.
"""

import numpy as np

from kinone.nn import functional as F
from kinone.nn.functional.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

rng = np.random.default_rng(13)


def r(*shape):
    return rng.standard_normal(shape)


def distinct(*shape):
    """Distinct values, shuffled, 0.01 apart."""
    return rng.permutation(np.prod(shape)).reshape(shape) * 0.01 - 0.5


SAMPLES = {
    MaxPool2d: [
        (lambda x: F.max_pool2d(x, 3, 2, 1), [distinct(2, 3, 7, 7)]),  # overlapping windows, padding
        (lambda x: F.max_pool2d(x, 2), [distinct(2, 2, 6, 5)]),  # stride defaults to the kernel
        (lambda x: F.max_pool2d(x, 3, 2, ceil_mode=True), [distinct(1, 2, 6, 8)]),  # last window past the edge
        (lambda x: F.max_pool2d(x, (2, 3), (1, 2), (1, 1), ceil_mode=True), [distinct(1, 2, 5, 6)]),
        (lambda x: F.max_pool2d(x, 3, 1, 1, dilation=2), [distinct(1, 2, 6, 6)]),
    ],
    AvgPool2d: [
        (lambda x: F.avg_pool2d(x, 3, 2, 1), [r(2, 2, 7, 7)]),  # count_include_pad=True
        (lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), [r(2, 2, 7, 6)]),
        (lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True), [r(1, 2, 6, 6)]),  # windows past the padded input
        (lambda x: F.avg_pool2d(x, (2, 3), (2, 1), (1, 1), True, False), [r(1, 2, 5, 6)]),
        (lambda x: F.avg_pool2d(x, 2), [r(2, 3, 4, 6)]),
        (lambda x: F.avg_pool2d(x, 2, 1, 1, divisor_override=3), [r(1, 2, 4, 4)]),
    ],
    AdaptiveAvgPool2d: [
        (lambda x: F.adaptive_avg_pool2d(x, (3, 4)), [r(2, 2, 5, 7)]),  # uneven, overlapping windows
        (lambda x: F.adaptive_avg_pool2d(x, (None, 2)), [r(1, 2, 3, 5)]),
        (lambda x: F.adaptive_avg_pool2d(x, (5, 4)), [r(1, 2, 3, 3)]),  # more outputs than inputs
        (lambda x: F.adaptive_avg_pool2d(x, (3, 2)), [r(2, 2, 6, 4)]),  # tiles evenly
        (lambda x: F.adaptive_avg_pool2d(x, 1), [r(2, 3, 4, 5)]),  # global average
    ],
}
