"""kinone.data.transforms against torchvision 0.29 (v1 transforms, PIL and array inputs).

Deterministic transforms give the same pixels exactly; random ones are compared at the
parameters Kinone drew (the crop box, the angle, the jitter factors), since torchvision
draws them from torch's generator. Skipped where torchvision is not installed (CI runs it in
the `vision` environment)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from kinone.autograd import Tensor
from kinone.data import transforms as T

torchvision = pytest.importorskip("torchvision")
import torch  # noqa: E402 - after the skip, which needs torchvision first
from torchvision import transforms as TV  # noqa: E402
from torchvision.transforms import functional as F  # noqa: E402


def images():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)
    return {
        "L": Image.fromarray(rgb[:, :, 0]),
        "RGB": Image.fromarray(rgb),
        "RGBA": Image.fromarray(np.concatenate([rgb, rgb[:, :, :1]], axis=2)),
        "tall": Image.fromarray(rng.integers(0, 256, (40, 17), dtype=np.uint8)),
    }


def same(ours, theirs):
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, Tensor)
        assert ours.dtype == theirs.numpy().dtype
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    else:
        assert ours.mode == theirs.mode and ours.size == theirs.size
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


# ------------------------------------------------------------------ ToTensor, Normalize
@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "1", "I", "I;16", "F"])
def test_to_tensor_on_pil_images(mode):
    image = (
        images()["RGB"].convert(mode)
        if mode != "I;16"
        else Image.fromarray(np.arange(12 * 7, dtype=np.uint16).reshape(12, 7) * 700)
    )
    same(T.ToTensor()(image), TV.ToTensor()(image))


@pytest.mark.parametrize("dtype", [np.uint8, np.float64, np.int32, np.float32])
@pytest.mark.parametrize("shape", [(5, 6), (5, 6, 1), (5, 6, 3)])
def test_to_tensor_on_arrays(dtype, shape):
    array = (np.random.default_rng(1).random(shape) * 255).astype(dtype)
    same(T.ToTensor()(array), TV.ToTensor()(array))


def test_normalize_after_to_tensor():
    x = TV.ToTensor()(images()["RGB"])
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    same(
        T.Normalize(mean, std)(T.ToTensor()(images()["RGB"])),
        TV.Normalize(mean, std)(x),
    )


# ------------------------------------------------------------------ geometry
@pytest.mark.parametrize("name", ["L", "RGB", "tall"])
@pytest.mark.parametrize(
    "size, kwargs",
    [
        (16, {}),
        (9, {"max_size": 12}),
        ((10, 7), {}),
        ([13], {}),
        (20, {"interpolation": "bicubic"}),
        (11, {"interpolation": "nearest"}),
    ],
)
def test_resize(name, size, kwargs):
    tv_kwargs = dict(kwargs)
    if "interpolation" in kwargs:
        tv_kwargs["interpolation"] = TV.InterpolationMode(kwargs["interpolation"])
    same(
        T.Resize(size, **kwargs)(images()[name]),
        TV.Resize(size, **tv_kwargs)(images()[name]),
    )


def test_resize_takes_torchvisions_interpolation_mode_names():
    image = images()["RGB"]
    same(
        T.Resize(12, interpolation=T.InterpolationMode.BICUBIC)(image),
        TV.Resize(12, interpolation=TV.InterpolationMode.BICUBIC)(image),
    )


@pytest.mark.parametrize("size", [10, (7, 12), (30, 40), (24, 9), 31])
@pytest.mark.parametrize("name", ["L", "RGB"])
def test_center_crop(size, name):
    same(T.CenterCrop(size)(images()[name]), TV.CenterCrop(size)(images()[name]))


@pytest.mark.parametrize("padding", [3, (2, 5), (1, 2, 3, 4), [4], (-2, 1, 3, -1)])
@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
@pytest.mark.parametrize("name", ["L", "RGB"])
def test_pad(padding, mode, name):
    image = images()[name]
    same(
        T.Pad(padding, padding_mode=mode)(image),
        TV.Pad(padding, padding_mode=mode)(image),
    )


@pytest.mark.parametrize("fill", [7, (10, 20, 30)])
def test_pad_fill(fill):
    image = images()["RGB"]
    same(T.Pad((2, 3), fill=fill)(image), TV.Pad((2, 3), fill=fill)(image))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 12},
        {"size": (20, 9), "padding": 4},
        {"size": 40, "pad_if_needed": True},
        {"size": (30, 35), "pad_if_needed": True, "padding_mode": "reflect"},
        {"size": 26, "padding": (1, 2), "pad_if_needed": True, "fill": 9},
    ],
)
def test_random_crop_at_the_drawn_box(kwargs):
    image = images()["RGB"]
    random.seed(3)
    ours = T.RandomCrop(**kwargs)(image)
    # the same draw again, applied with torchvision's functions in torchvision's order
    random.seed(3)
    fill, mode = kwargs.get("fill", 0), kwargs.get("padding_mode", "constant")
    padded = F.pad(image, kwargs["padding"], fill, mode) if "padding" in kwargs else image
    size = T.RandomCrop(kwargs["size"]).size
    if kwargs.get("pad_if_needed") and padded.width < size[1]:
        padded = F.pad(padded, [size[1] - padded.width, 0], fill, mode)
    if kwargs.get("pad_if_needed") and padded.height < size[0]:
        padded = F.pad(padded, [0, size[0] - padded.height], fill, mode)
    top, left, h, w = T.RandomCrop.get_params(padded.width, padded.height, size)
    same(ours, F.crop(padded, top, left, h, w))


def test_random_crop_errors_as_torchvision():
    with pytest.raises(ValueError, match="larger than the input image size"):
        T.RandomCrop(50)(images()["L"])
    with pytest.raises(ValueError, match="larger than input image size"):
        TV.RandomCrop(50)(images()["L"])


def test_flips():
    for image in images().values():
        same(T.RandomHorizontalFlip(p=1.0)(image), TV.RandomHorizontalFlip(p=1.0)(image))
        same(T.RandomVerticalFlip(p=1.0)(image), TV.RandomVerticalFlip(p=1.0)(image))


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_random_resized_crop_at_the_drawn_box(interpolation):
    image = images()["RGB"]
    for seed in range(5):
        random.seed(seed)
        ours = T.RandomResizedCrop(14, scale=(0.3, 1.0), interpolation=interpolation)(image)
        random.seed(seed)
        top, left, h, w = T.RandomResizedCrop.get_params(image.width, image.height, (0.3, 1.0), (3 / 4, 4 / 3))
        mode = TV.InterpolationMode(interpolation)
        same(ours, F.resized_crop(image, top, left, h, w, [14, 14], mode))


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"expand": True},
        {"center": (3, 5)},
        {"fill": 40},
        {"interpolation": "bilinear"},
    ],
)
def test_random_rotation_at_the_drawn_angle(kwargs):
    image = images()["RGB"]
    random.seed(2)
    ours = T.RandomRotation(30, **kwargs)(image)
    random.seed(2)
    angle = random.uniform(-30.0, 30.0)
    tv_kwargs = dict(kwargs)
    tv_kwargs["interpolation"] = TV.InterpolationMode(kwargs.get("interpolation", "nearest"))
    same(ours, F.rotate(image, angle, **tv_kwargs))


# ------------------------------------------------------------------ colour
@pytest.mark.parametrize("name", ["L", "RGB", "RGBA"])
@pytest.mark.parametrize("factor", [0.0, 0.4, 1.0, 1.7])
def test_brightness_contrast_saturation(name, factor):
    image = images()[name]
    same(T.adjust_brightness(image, factor), F.adjust_brightness(image, factor))
    same(T.adjust_contrast(image, factor), F.adjust_contrast(image, factor))
    same(T.adjust_saturation(image, factor), F.adjust_saturation(image, factor))


@pytest.mark.parametrize("name", ["L", "RGB"])
@pytest.mark.parametrize("factor", [-0.5, -0.21, 0.0, 0.1, 0.37, 0.5])
def test_hue(name, factor):
    image = images()[name]
    same(T.adjust_hue(image, factor), F.adjust_hue(image, factor))


def test_color_jitter_at_the_drawn_factors_and_order():
    image = images()["RGB"]
    jitter = T.ColorJitter(brightness=0.4, contrast=(0.5, 1.5), saturation=0.3, hue=0.2)
    tv = TV.ColorJitter(brightness=0.4, contrast=(0.5, 1.5), saturation=0.3, hue=0.2)
    assert (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == (
        tv.brightness,
        tv.contrast,
        tv.saturation,
        tv.hue,
    )
    for seed in range(4):
        random.seed(seed)
        ours = jitter(image)
        random.seed(seed)
        order, *factors = jitter.get_params()
        theirs = image
        adjust = (
            F.adjust_brightness,
            F.adjust_contrast,
            F.adjust_saturation,
            F.adjust_hue,
        )
        for which in order:
            theirs = adjust[which](theirs, factors[which])
        same(ours, theirs)


@pytest.mark.parametrize(
    "arguments",
    [{"brightness": -1}, {"hue": 0.7}, {"contrast": (2, 1)}, {"saturation": "x"}],
)
def test_color_jitter_argument_errors_as_torchvision(arguments):
    with pytest.raises(Exception) as theirs:
        TV.ColorJitter(**arguments)
    with pytest.raises(type(theirs.value)):
        T.ColorJitter(**arguments)


def test_a_composed_pipeline_gives_torchvisions_tensor():
    image = images()["RGB"]
    ours = T.Compose(
        [
            T.Resize(20),
            T.CenterCrop(16),
            T.ToTensor(),
            T.Normalize([0.5] * 3, [0.25] * 3),
        ]
    )(image)
    theirs = TV.Compose(
        [
            TV.Resize(20),
            TV.CenterCrop(16),
            TV.ToTensor(),
            TV.Normalize([0.5] * 3, [0.25] * 3),
        ]
    )(image)
    same(ours, theirs)
