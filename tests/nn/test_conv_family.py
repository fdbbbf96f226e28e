"""conv1d, conv_transpose2d, interpolate, pixel_shuffle, pad and their layers without torch:
the argument parser's rules, errors that name the op and what was expected, shapes, reprs."""

from __future__ import annotations

import numpy as np
import pytest

from kinone import nn
from kinone.autograd import Tensor, trace
from kinone.nn import functional as F
from kinone.nn.functional.arguments import ntuple, pair, single
from kinone.nn.functional.conv import Conv2d

rng = np.random.default_rng(5)


def t(*shape):
    return Tensor(rng.standard_normal(shape))


def test_pair_reads_sizes_as_pytorch_does():
    assert pair(3, "stride", "conv2d") == (3, 3)
    assert pair(np.int64(2), "stride", "conv2d") == (2, 2)
    assert pair([2], "stride", "conv2d") == (2, 2)  # one value is repeated, as PyTorch's expand_param_if_needed
    assert pair((1, 2), "stride", "conv2d") == (1, 2)
    assert single(4, "padding", "conv1d") == (4,)
    assert ntuple(1, 4, "padding", "ZeroPad2d") == (1, 1, 1, 1)
    with pytest.raises(ValueError, match=r"conv2d: expected stride to be a single integer value or a list of 2 values"):
        pair((1, 2, 3), "stride", "conv2d")
    for bad in (1.5, True, "2", (1, 2.0), None):
        with pytest.raises(TypeError, match=r"conv2d\(\): argument 'stride' must be an int or a tuple of ints"):
            pair(bad, "stride", "conv2d")


def test_layers_store_their_arguments_as_tuples():
    conv = nn.Conv2d(3, 4, 3, stride=[2], padding=1)
    assert (conv.kernel_size, conv.stride, conv.padding, conv.dilation) == ((3, 3), (2, 2), (1, 1), (1, 1))
    assert nn.Conv2d(3, 4, 3, padding="same").padding == "same"
    conv1 = nn.Conv1d(3, 4, 5, stride=2)
    assert (conv1.kernel_size, conv1.stride, conv1.padding, conv1.weight.shape) == ((5,), (2,), (0,), (4, 3, 5))
    up = nn.ConvTranspose2d(4, 6, 3, groups=2, output_padding=1, stride=2)
    assert up.weight.shape == (4, 3, 3, 3) and up.bias.shape == (6,) and up.output_padding == (1, 1)
    assert repr(up) == "ConvTranspose2d(4, 6, kernel_size=(3, 3), stride=(2, 2), output_padding=(1, 1), groups=2)"


def test_conv1d_is_conv2d_on_one_row():
    x, w, b = t(2, 3, 9), t(4, 3, 3), t(4)
    with trace() as records:
        y = F.conv1d(x, w, b, stride=2, padding=1)
    assert y.shape == (2, 4, 5) and Conv2d in {r.function for r in records}
    expected = F.conv2d(x.reshape(2, 3, 1, 9), w.reshape(4, 3, 1, 3), b, stride=(1, 2), padding=(0, 1))
    np.testing.assert_array_equal(y.numpy(), expected.numpy()[:, :, 0])


def test_conv_transpose2d_is_the_adjoint_of_conv2d():
    """<conv2d(x, W), y> = <x, conv_transpose2d(y, W)> for the same stride, padding, dilation, groups."""
    x, w = rng.standard_normal((2, 4, 9, 8)), rng.standard_normal((6, 2, 3, 3))
    kwargs = {"stride": 2, "padding": 1, "dilation": 2, "groups": 2}
    forward = F.conv2d(Tensor(x), Tensor(w), **kwargs).numpy()
    y = rng.standard_normal(forward.shape)
    smallest = F.conv_transpose2d(Tensor(y), Tensor(w), **kwargs).shape[2:]
    extra = tuple(a - b for a, b in zip(x.shape[2:], smallest, strict=True))
    back = F.conv_transpose2d(Tensor(y), Tensor(w), output_padding=extra, **kwargs).numpy()
    assert back.shape == x.shape
    np.testing.assert_allclose(np.sum(forward * y), np.sum(x * back), rtol=1e-10)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: F.conv_transpose2d(t(1, 3, 4, 4), t(3, 2, 3, 3), stride=2, output_padding=2),
            ValueError,
            r"conv_transpose2d: output padding must be non-negative and smaller than either stride or dilation",
        ),
        (
            lambda: F.conv_transpose2d(t(1, 4, 4, 4), t(3, 2, 3, 3)),
            ValueError,
            r"input of shape \(1, 4, 4, 4\) has 4 channels",
        ),
        (
            lambda: F.conv_transpose2d(t(1, 3, 4, 4), t(3, 2, 3, 3), padding="same"),
            TypeError,
            r"'valid' and 'same' are conv2d's",
        ),
        (
            lambda: F.conv_transpose2d(t(1, 3, 1, 1), t(3, 2, 1, 1), padding=1),
            ValueError,
            r"gives an empty output \(-1, -1\)",
        ),
        (
            lambda: F.conv_transpose2d(t(1, 3, 4, 4), t(3, 2, 3, 3), t(3)),
            ValueError,
            r"bias of shape \(3,\) .* expected \(2,\)",
        ),
        (lambda: F.conv1d(t(1, 3, 4, 4), t(2, 3, 3)), ValueError, r"conv1d: expected input \(N, C, L\)"),
        (
            lambda: F.conv1d(t(1, 3, 8), t(2, 3, 3), stride=(1, 2)),
            ValueError,
            r"conv1d: expected stride to be a single integer",
        ),
        (lambda: F.pad(t(1, 2, 3), (1, 2, 3)), ValueError, r"pad: padding length must be divisible by 2"),
        (lambda: F.pad(t(2, 3), (1, 1, 1, 1, 1, 1)), ValueError, r"padding length too large"),
        (lambda: F.pad(t(1, 2, 3), (1, 1), mode="wrap"), ValueError, r"pad: mode must be one of constant, reflect"),
        (
            lambda: F.pad(t(1, 2, 3), (3, 0), mode="reflect"),
            ValueError,
            r"padding size should be less than the corresponding input dimension, but got padding \(3, 0\) at dim",
        ),
        (
            lambda: F.pad(t(1, 2, 3), (4, 0), mode="circular"),
            ValueError,
            r"should be at most the corresponding input dimension",
        ),
        (lambda: F.pad(t(1, 2, 3), (-1, 0), mode="replicate"), ValueError, r"needs non-negative padding"),
        (lambda: F.pad(t(1, 2, 3), (1, 0), mode="reflect", value=1.0), ValueError, r"doesn't take in value argument"),
        (lambda: F.pad(t(1, 2, 3), (-2, -2)), ValueError, r"has negative size"),
        (lambda: F.pixel_shuffle(t(1, 5, 2, 2), 2), ValueError, r"input.size\(-3\)=5 is not divisible by 4"),
        (lambda: F.pixel_shuffle(t(4, 2), 2), ValueError, r"at least 3 dimensions"),
        (lambda: F.pixel_shuffle(t(1, 4, 2, 2), 0), ValueError, r"positive upscale_factor"),
        (lambda: F.interpolate(t(1, 2, 3, 3)), ValueError, r"either size or scale_factor should be defined"),
        (lambda: F.interpolate(t(1, 2, 3, 3), size=2, scale_factor=2), ValueError, r"only one of size or scale_factor"),
        (lambda: F.interpolate(t(1, 2, 3, 3), size=2, mode="bicubic"), ValueError, r"mode 'bicubic' is not supported"),
        (
            lambda: F.interpolate(t(1, 2, 3, 3), size=2, mode="linear"),
            ValueError,
            r"got 4D input, but linear mode needs 3D",
        ),
        (
            lambda: F.interpolate(t(1, 2, 3, 3), size=2, align_corners=True),
            ValueError,
            r"align_corners option can only be set",
        ),
        (lambda: F.interpolate(t(1, 2, 3, 3), size=(2, 2, 2)), ValueError, r"size must be a positive int or 2 of them"),
        (lambda: F.interpolate(t(1, 2, 3, 3), scale_factor=0.2), ValueError, r"is empty"),
        (lambda: nn.ConvTranspose2d(3, 2, 3, padding_mode="reflect"), ValueError, r'only "zeros" padding mode'),
        (lambda: nn.Conv2d(3, 2, 3, padding_mode="wrap"), ValueError, r"padding_mode must be one of"),
        (lambda: nn.Conv1d(3, 2, 3, groups=2), ValueError, r"must be divisible by groups \(2\)"),
    ],
)
def test_errors_name_the_op_and_what_was_expected(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_nearest_upsampling_gradient_sums_the_copies():
    x = Tensor(np.arange(6.0).reshape(1, 1, 2, 3), requires_grad=True)
    y = F.interpolate(x, scale_factor=2)
    np.testing.assert_array_equal(y.numpy()[0, 0], np.repeat(np.repeat(x.numpy()[0, 0], 2, 0), 2, 1))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((1, 1, 2, 3), 4.0))


def test_new_layers_keep_float32():
    x = Tensor(rng.standard_normal((2, 4, 6, 6)).astype(np.float32), requires_grad=True)
    for layer in (
        nn.ConvTranspose2d(4, 2, 3, stride=2),
        nn.Upsample(scale_factor=2, mode="bilinear"),
        nn.PixelShuffle(2),
        nn.ReflectionPad2d(1),
        nn.Conv2d(4, 2, 3, padding=1, padding_mode="circular"),
    ):
        x.grad = None
        y = layer(x)
        assert y.dtype == np.float32
        y.sum().backward()
        assert x.grad.dtype == np.float32
