"""Gradcheck samples: conv1d (Conv2d on (N, C, 1, L)), conv_transpose2d, interpolate
(nearest, linear, bilinear), pixel_shuffle and pad (constant, reflect, replicate, circular)."""

import numpy as np

from kinone.nn import functional as F
from kinone.nn.functional.conv import Conv2d, ConvTranspose2d
from kinone.nn.functional.padding import Pad
from kinone.nn.functional.pixel_shuffle import PixelShuffle
from kinone.nn.functional.upsample import Interpolate

rng = np.random.default_rng(17)


def r(*shape):
    return rng.standard_normal(shape)


SAMPLES = {
    Conv2d: [
        (lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1, dilation=2, groups=2), [r(2, 4, 9), r(6, 2, 3), r(6)]),
        (lambda x, w: F.conv1d(x, w, padding="same"), [r(1, 3, 6), r(2, 3, 3)]),
    ],
    ConvTranspose2d: [
        # stride 2 with output_padding, bias
        (
            lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
            [r(2, 3, 3, 4), r(3, 2, 3, 3), r(2)],
        ),
        # groups, dilation, non-square stride and kernel, no bias
        (
            lambda x, w: F.conv_transpose2d(
                x, w, stride=(2, 3), padding=(0, 2), output_padding=(1, 0), groups=2, dilation=2
            ),
            [r(1, 4, 3, 3), r(4, 3, 3, 2)],
        ),
        # stride 1 (every output reached by several windows), 1x1 kernel
        (lambda x, w: F.conv_transpose2d(x, w, padding=1), [r(2, 2, 4, 4), r(2, 3, 3, 3)]),
        (lambda x, w, b: F.conv_transpose2d(x, w, b), [r(2, 3, 2, 3), r(3, 4, 1, 1), r(4)]),
    ],
    Interpolate: [
        (lambda x: F.interpolate(x, scale_factor=2), [r(2, 2, 3, 4)]),
        (lambda x: F.interpolate(x, size=(3, 5)), [r(1, 2, 5, 4)]),  # down in H, up in W
        (lambda x: F.interpolate(x, scale_factor=1.7, mode="bilinear"), [r(2, 2, 3, 4)]),
        (lambda x: F.interpolate(x, size=(5, 2), mode="bilinear", align_corners=True), [r(1, 2, 3, 4)]),
        (lambda x: F.interpolate(x, scale_factor=2.5, mode="linear"), [r(2, 3, 4)]),
    ],
    PixelShuffle: [
        (lambda x: F.pixel_shuffle(x, 2), [r(2, 8, 2, 3)]),
        (lambda x: F.pixel_shuffle(x, 3), [r(9, 2, 2)]),  # unbatched (C, H, W)
    ],
    Pad: [
        (lambda x: F.pad(x, (1, 2, 2, 0), value=0.5), [r(2, 2, 3, 4)]),
        (lambda x: F.pad(x, (-1, 2, 1, -2)), [r(1, 2, 4, 5)]),  # negative pads crop
        (lambda x: F.pad(x, (2, 1, 1, 2), mode="reflect"), [r(2, 2, 4, 3)]),
        (lambda x: F.pad(x, (3, 2), mode="reflect"), [r(2, 3, 4)]),
        (lambda x: F.pad(x, (2, 1, 1, 3), mode="replicate"), [r(1, 2, 3, 4)]),
        (lambda x: F.pad(x, (2, 1, 1, 3), mode="circular"), [r(1, 2, 3, 4)]),
    ],
}
