"""Image transforms: shapes, value ranges, torchvision's arithmetic checked against PIL
references, arrays in and out, seeded randomness."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from kinone.data import transforms as T


def gradient(width=40, height=30, mode="L"):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (height, width, 3 if mode == "RGB" else 1), dtype=np.uint8)
    return Image.fromarray(pixels if mode == "RGB" else pixels[:, :, 0])


# ------------------------------------------------------------------ deterministic
@pytest.mark.parametrize(
    "size, image_size, expected",
    [(20, (40, 30), (26, 20)), (20, (30, 40), (20, 26)), (15, (15, 15), (15, 15)), ((12, 7), (40, 30), (7, 12))],
)
def test_resize_matches_torchvision_sizes_and_pil_pixels(size, image_size, expected):
    image = gradient(*image_size)
    out = T.Resize(size)(image)
    assert out.size == expected  # (w, h): int sets the shorter side, the longer rounded down
    reference = image if out.size == image.size else image.resize(expected, Image.Resampling.BILINEAR)
    assert np.array_equal(np.asarray(out), np.asarray(reference))
    assert T.Resize(size, interpolation="nearest")(image).size == expected


def test_center_crop_offsets_and_padding():
    image = gradient(41, 30)
    out = T.CenterCrop((10, 20))(image)
    top, left = round((30 - 10) / 2), round((41 - 20) / 2)
    assert np.array_equal(np.asarray(out), np.asarray(image)[top : top + 10, left : left + 20])
    padded = np.asarray(T.CenterCrop(50)(image))
    assert padded.shape == (50, 50)
    # torchvision pads (50-41)//2 = 4 left, (50-30)//2 = 10 top, then crops 50 x 50 at (0, 0)
    assert (
        np.array_equal(padded[10:40, 4:45], np.asarray(image)) and padded[:10].max() == 0 and padded[:, :4].max() == 0
    )


def test_horizontal_flip_and_rotation_against_pil():
    image = gradient()
    assert np.array_equal(np.asarray(T.RandomHorizontalFlip(p=1.0)(image)), np.asarray(image)[:, ::-1])
    assert T.RandomHorizontalFlip(p=0.0)(image) is image
    rotated = T.RandomRotation((90, 90))(image)
    assert np.array_equal(np.asarray(rotated), np.asarray(image.rotate(90, Image.Resampling.NEAREST)))
    with pytest.raises(ValueError, match="non-negative"):
        T.RandomRotation(-5)


def test_grayscale():
    image = gradient(mode="RGB")
    assert np.array_equal(np.asarray(T.Grayscale()(image)), np.asarray(image.convert("L")))
    three = np.asarray(T.Grayscale(num_output_channels=3)(image))
    assert three.shape == (30, 40, 3) and np.array_equal(three[..., 0], three[..., 2])
    assert T.Grayscale()(np.asarray(image)).shape == (30, 40, 1)
    with pytest.raises(ValueError, match="1 or 3"):
        T.Grayscale(2)


def test_to_array_layouts_and_ranges():
    gray = T.ToArray()(gradient())
    assert gray.shape == (1, 30, 40) and gray.dtype == np.float32 and 0 <= gray.min() and gray.max() <= 1
    assert np.array_equal(gray[0], np.asarray(gradient()).astype(np.float32) / np.float32(255))
    rgb = T.ToArray()(gradient(mode="RGB"))
    assert rgb.shape == (3, 30, 40) and rgb.flags.c_contiguous
    assert np.array_equal(rgb[1], np.asarray(gradient(mode="RGB"))[:, :, 1] / np.float32(255))
    sixteen = T.ToArray()(np.array([[0, 65535]], dtype=np.uint16))
    assert sixteen.tolist() == [[[0.0, 1.0]]]
    assert T.ToArray()(np.ones((2, 2, 4), np.uint8) * 255).shape == (4, 2, 2)
    with pytest.raises(ValueError, match="shape"):
        T.ToArray()(np.zeros((1, 2, 3, 4), np.uint8))


def test_normalize():
    x = np.stack([np.full((2, 2), 0.5, np.float32), np.full((2, 2), 1.0, np.float32)])
    out = T.Normalize(mean=[0.5, 0.5], std=[0.25, 0.5])(x)
    assert np.allclose(out[0], 0.0) and np.allclose(out[1], 1.0) and out.dtype == np.float32
    assert x[1, 0, 0] == 1.0  # not in place by default
    assert T.Normalize([0.5], [0.5])(x).shape == (2, 2, 2)  # one value for every channel
    with pytest.raises(ValueError, match="3 values for an image with 2 channels"):
        T.Normalize([0.1, 0.2, 0.3], [1, 1, 1])(x)
    with pytest.raises(ValueError, match="zeros"):
        T.Normalize([0.5], [0.0])
    with pytest.raises(TypeError, match="apply ToTensor or ToArray first"):
        T.Normalize([0.5], [0.5])(np.zeros((4, 4), np.uint8))


def test_arrays_go_through_geometric_transforms_as_arrays():
    array = np.asarray(gradient())
    out = T.Compose([T.Resize((10, 12)), T.CenterCrop(8), T.RandomHorizontalFlip(1.0)])(array)
    assert isinstance(out, np.ndarray) and out.shape == (8, 8) and out.dtype == np.uint8
    hw1 = T.Resize(10)(array[:, :, None])
    assert hw1.shape == (10, 13, 1)
    with pytest.raises(TypeError, match="before ToArray"):
        T.Resize(4)(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="size"):
        T.Resize(0)


def test_compose_pipeline_to_normalized_chw():
    pipeline = T.Compose([T.Grayscale(), T.Resize(16), T.CenterCrop(16), T.ToArray(), T.Normalize([0.5], [0.5])])
    out = pipeline(gradient(mode="RGB"))
    assert out.shape == (1, 16, 16) and -1.0 <= out.min() and out.max() <= 1.0
    assert "Resize(size=16" in repr(pipeline)


# ------------------------------------------------------------------ random
def test_random_resized_crop_box_follows_torchvision():
    image = gradient(64, 48)
    for seed in range(50):
        random.seed(seed)
        top, left, h, w = T.RandomResizedCrop.get_params(64, 48, (0.08, 1.0), (3 / 4, 4 / 3))
        assert 0 < h <= 48 and 0 < w <= 64 and 0 <= top <= 48 - h and 0 <= left <= 64 - w
        assert 0.08 * 64 * 48 * 0.7 <= h * w <= 64 * 48 * 1.0001
    # the whole image when scale and ratio allow nothing else
    out = T.RandomResizedCrop((24, 32), scale=(1.0, 1.0), ratio=(4 / 3, 4 / 3))(image)
    assert np.array_equal(np.asarray(out), np.asarray(image.resize((32, 24), Image.Resampling.BILINEAR)))
    # impossible ratios fall back to torchvision's central crop
    assert T.RandomResizedCrop.get_params(64, 48, (0.9, 1.0), (10.0, 10.0)) == (21, 0, 6, 64)
    assert T.RandomResizedCrop.get_params(64, 48, (0.9, 1.0), (0.1, 0.1)) == (0, 29, 48, 5)


def test_random_transforms_are_reproducible_with_python_random():
    pipeline = T.Compose([T.RandomResizedCrop(16), T.RandomHorizontalFlip(), T.RandomRotation(20), T.ToArray()])
    image = gradient()
    random.seed(3)
    a = [pipeline(image) for _ in range(5)]
    random.seed(3)
    b = [pipeline(image) for _ in range(5)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], a[1])
    assert all(x.shape == (1, 16, 16) for x in a)


# ------------------------------------------------------------------ torchvision's other names
def test_random_crop_visits_every_position_evenly_and_follows_the_seed():
    image = np.arange(6 * 7, dtype=np.uint8).reshape(6, 7)
    crop = T.RandomCrop((4, 4))
    random.seed(0)
    corners = [int(crop(image)[0, 0]) for _ in range(4000)]
    counts = np.bincount(corners, minlength=image.size)[np.unique(corners)]
    assert len(counts) == 3 * 4  # every (top, left) of the 3 x 4 possible
    assert counts.min() > 0.8 * 4000 / 12 and counts.max() < 1.2 * 4000 / 12
    random.seed(5)
    first = [crop(image)[0, 0] for _ in range(5)]
    random.seed(5)
    assert [crop(image)[0, 0] for _ in range(5)] == first
    padded = T.RandomCrop(10, padding=2, pad_if_needed=True)(image)
    assert padded.shape == (10, 10) and padded.dtype == np.uint8


def test_color_jitter_draws_within_its_ranges_in_a_random_order():
    jitter = T.ColorJitter(brightness=0.5, contrast=(0.8, 1.2), saturation=0, hue=0.1)
    assert jitter.saturation is None  # 0: left out, as torchvision
    random.seed(1)
    draws = [jitter.get_params() for _ in range(500)]
    assert all(sorted(order) == [0, 1, 2, 3] for order, *_ in draws)
    assert len({tuple(order) for order, *_ in draws}) == 24
    b, c, s, h = (np.array([d[i] for d in draws], dtype=float) for i in range(1, 5))
    assert 0.5 <= b.min() < 0.55 and 1.45 < b.max() <= 1.5 and abs(b.mean() - 1) < 0.05
    assert 0.8 <= c.min() and c.max() <= 1.2 and np.isnan(s).all() and -0.1 <= h.min() and h.max() <= 0.1
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    random.seed(2)
    out = jitter(rgb)
    random.seed(2)
    assert out.shape == rgb.shape and np.array_equal(jitter(rgb), out)


def test_to_tensor_lambda_and_tensors_in_image_transforms():
    from kinone.autograd import Tensor

    x = T.ToTensor()(np.full((2, 3, 3), 255, np.uint8))
    assert isinstance(x, Tensor) and x.shape == (3, 2, 3) and x.dtype == np.float32 and float(x.numpy().max()) == 1.0
    assert isinstance(T.Normalize([0.5] * 3, [0.5] * 3)(x), Tensor)
    assert T.Lambda(lambda img: img * 2)(3) == 6
    with pytest.raises(TypeError, match="put RandomCrop before ToTensor"):
        T.RandomCrop(2)(x)
    with pytest.raises(ValueError, match="padding"):
        T.Pad((1, 2, 3))
