"""Converter cases: ConvTranspose2d, Interpolate (Resize), PixelShuffle (DepthToSpace), Pad,
and conv1d (Conv2d on (N, C, 1, L)); merged into test_converters.CASES."""

from kinone import nn
from kinone.nn import functional as F
from kinone.nn.functional.conv import Conv2d, ConvTranspose2d
from kinone.nn.functional.padding import Pad
from kinone.nn.functional.pixel_shuffle import PixelShuffle
from kinone.nn.functional.upsample import Interpolate

IMG = (2, 3, 6, 6)

CASES = {
    Conv2d: [
        (nn.Conv1d(3, 4, 3, stride=2, padding=1), (2, 3, 9)),
        (nn.Conv1d(4, 6, 3, groups=2, padding="same"), (2, 4, 7)),
    ],
    ConvTranspose2d: [
        (nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1), IMG),
        (
            nn.ConvTranspose2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), groups=2, dilation=2, bias=False),
            (2, 4, 5, 6),
        ),
        (nn.ConvTranspose2d(3, 2, 1), IMG),
    ],
    Interpolate: [
        (nn.Upsample(scale_factor=2), IMG),
        (nn.Upsample(size=(4, 9)), IMG),
        (lambda x: F.interpolate(x, scale_factor=1.5), (2, 3, 5, 7)),
        (nn.Upsample(scale_factor=2, mode="bilinear"), IMG),
        (nn.Upsample(size=(9, 4), mode="bilinear", align_corners=True), IMG),
        (lambda x: F.interpolate(x, scale_factor=(1.5, 0.5), mode="bilinear"), (2, 3, 5, 8)),
        (lambda x: F.interpolate(x, size=11, mode="linear"), (2, 3, 6)),
    ],
    PixelShuffle: [(nn.PixelShuffle(2), (2, 8, 3, 4)), (nn.PixelShuffle(3), (2, 9, 2, 2))],
    Pad: [
        (lambda x: F.pad(x, (1, 2, 0, 3), value=0.5), IMG),
        (nn.ZeroPad2d((1, 0, 2, 1)), IMG),
        (lambda x: F.pad(x, (-1, 2, 1, -2)), IMG),
        (nn.ReflectionPad2d(2), IMG),
        (nn.ReplicationPad2d((1, 2, 3, 0)), IMG),
        (lambda x: F.pad(x, (2, 1), mode="reflect"), (2, 3, 5)),
        (nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), IMG),
    ],
}
