"""Batch augmentations on uint8 arrays (kinone.data.batch_transforms): geometry against Pillow,
keys that make an image's augmentation independent of its batch, the stand-in CUDA device."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from kinone.autograd import backend
from kinone.data import DataLoader, TensorDataset
from kinone.data import batch_transforms as B
from kinone.data import transforms as T


def smooth_images(n=6, size=48, seed=0):
    """Smooth random images (bilinear comparisons are meaningful on them)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, 8, 8), dtype=np.uint8)
    return np.stack([np.asarray(Image.fromarray(s).resize((size, size), Image.Resampling.BICUBIC)) for s in small])


def keys(n, seed=0, epoch=0):
    return B.sample_keys(seed, epoch, np.arange(n))


def test_resize_matches_pillow_bilinear_when_enlarging():
    images = smooth_images()
    out = B.Resize((70, 60))(images, keys(len(images)))
    pil = np.stack([np.asarray(Image.fromarray(i).resize((60, 70), Image.Resampling.BILINEAR)) for i in images])
    assert out.dtype == np.uint8 and out.shape == (6, 70, 60)
    assert np.abs(out.astype(int) - pil).max() <= 1


def test_rotation_matches_pillow_inside_and_fills_the_corners():
    images = smooth_images()
    out = B.RandomRotation((12, 12))(images, keys(len(images)))
    pil = np.stack([np.asarray(Image.fromarray(i).rotate(12, Image.Resampling.BILINEAR)) for i in images])
    assert np.abs(out.astype(int) - pil)[:, 6:-6, 6:-6].max() <= 1
    assert (out[:, 0, 0] == 0).all() and (out[:, -1, -1] == 0).all()


def test_crops_and_flips_copy_exact_pixels():
    images = smooth_images()[:, None]  # (N, 1, H, W)
    k = keys(len(images), seed=3)
    crop = B.Compose([B.RandomCrop(30), B.RandomHorizontalFlip(0.5)])
    out = crop(images, k)
    matrix, _, _ = crop.plan(k.astype(np.uint64), 48, 48)
    flipped = matrix[:, 0, 0] < 0
    assert 0 < flipped.sum() < len(images)  # both kinds drawn
    for n in range(len(images)):
        top, left = int(matrix[n, 1, 2]), int(matrix[n, 0, 2] - (30 if flipped[n] else 0))
        window = images[n, :, top : top + 30, left : left + 30]
        assert np.array_equal(out[n], window[..., ::-1] if flipped[n] else window)
    assert np.array_equal(B.CenterCrop(20)(images)[:, 0], images[:, 0, 14:34, 14:34])


def test_random_resized_crop_boxes_follow_torchvision_bounds():
    step = B.RandomResizedCrop(32, scale=(0.25, 0.5), ratio=(0.5, 2.0))
    top, left, h, w = step.boxes(keys(2000), 0, 64, 80)
    area = h * w / (64 * 80)
    assert area.min() >= 0.24 and area.max() <= 0.51 and (w / h).min() >= 0.49 and (w / h).max() <= 2.05
    assert top.min() >= 0 and left.min() >= 0 and (top + h).max() <= 64 and (left + w).max() <= 80
    assert len(np.unique(top)) > 20 and len(np.unique(left)) > 20  # spread over the image
    images = smooth_images(size=64)
    whole = B.RandomResizedCrop(64, scale=(1.0, 1.0), ratio=(1.0, 1.0))(images, keys(len(images)))
    assert np.array_equal(whole, images)  # the whole image at its size: unchanged


def test_normalize_is_fused_and_equals_the_pil_path_for_a_plain_crop():
    images = smooth_images()
    augment = B.Compose([B.CenterCrop(40), B.Normalize([0.5], [0.25])])
    out = augment(images[:, None], keys(len(images)))
    expected = T.Normalize([0.5], [0.25])(np.stack([T.ToArray()(T.CenterCrop(40)(i)) for i in images]))
    assert out.dtype == np.float32 and out.shape == (6, 1, 40, 40)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_an_image_gets_the_same_augmentation_in_any_batch():
    images = smooth_images(n=10)[:, None]
    augment = B.Compose([B.RandomResizedCrop(24, scale=(0.3, 1.0)), B.RandomRotation(10), B.Normalize([0.5], [0.25])])
    k = keys(10, seed=7, epoch=2)
    whole = augment(images, k)
    order = np.random.default_rng(1).permutation(10)
    shuffled = augment(images[order], k[order])
    np.testing.assert_array_equal(shuffled, whole[order])
    alone = augment(images[4:5], k[4:5])
    np.testing.assert_array_equal(alone[0], whole[4])
    other_epoch = augment(images, keys(10, seed=7, epoch=3))
    assert not np.array_equal(other_epoch, whole)
    assert len({whole[i].tobytes() for i in range(10)}) == 10


def test_keys_depend_on_seed_epoch_and_index_only():
    a = B.sample_keys(1, 2, np.array([5, 9, 5]))
    assert a.dtype == np.uint64 and a[0] == a[2] and a[0] != a[1]
    assert B.sample_keys(1, 2, [9])[0] == a[1]
    assert B.sample_keys(2, 2, [5])[0] != a[0] and B.sample_keys(1, 3, [5])[0] != a[0]
    u = B.uniform(B.sample_keys(0, 0, np.arange(20000)), 0, 2)
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.03


def test_keyed_dataset_in_a_loader_gives_the_same_batches_with_0_and_2_workers():
    images = np.stack([smooth_images(n=1, seed=s)[0] for s in range(12)])[:, None]
    data = B.KeyedDataset(TensorDataset(images, np.arange(12)))
    augment = B.Compose([B.RandomResizedCrop(20, scale=(0.5, 1.0)), B.Normalize([0.5], [0.25])])

    def run(workers, batch_size):
        loader = DataLoader(
            data, batch_size=batch_size, shuffle=True, seed=4, num_workers=workers, collate_fn=B.AugmentCollate(augment)
        )
        out = {}
        for x, index in loader:
            out.update({int(i): row for i, row in zip(index.data, x.data)})
        return out

    zero, two = run(0, 4), run(2, 5)
    assert sorted(zero) == list(range(12))
    assert all(np.array_equal(zero[i], two[i]) for i in range(12))


def test_the_same_code_runs_on_the_standin_device_with_the_same_result():
    images = smooth_images()[:, None]
    k = keys(len(images), seed=2)
    pipelines = [
        B.Compose([B.RandomResizedCrop(24, scale=(0.3, 1.0)), B.RandomRotation(8), B.Normalize([0.5], [0.25])]),
        B.Compose([B.RandomResizedCrop(24), B.Normalize([0.5], [0.25])]),
        B.Compose([B.RandomCrop(30), B.RandomHorizontalFlip(), B.Normalize([0.5], [0.25])]),
    ]
    host = [augment(images, k) for augment in pipelines]
    with backend.use_standin_cuda():
        xp = backend.cuda_module()
        device_images = xp.asarray(images)
        for augment, expected in zip(pipelines, host):
            out = augment(device_images, xp.asarray(k))
            assert backend.is_cuda_array(out) and out.dtype == np.float32
            np.testing.assert_allclose(out.get(), expected, rtol=1e-5, atol=1e-5)


def test_bad_inputs_name_what_was_expected():
    with pytest.raises(TypeError, match=r"expected uint8 images of shape \(N, C, H, W\) or \(N, H, W\); got float32"):
        B.Resize(8)(np.zeros((2, 8, 8), np.float32), keys(2))
    with pytest.raises(ValueError, match="one key per image, 2; got keys of shape"):
        B.Resize(8)(np.zeros((2, 8, 8), np.uint8), keys(3))
    with pytest.raises(ValueError, match="crop 30 x 30 is larger than the images, 20 x 20"):
        B.RandomCrop(30)(np.zeros((2, 20, 20), np.uint8), keys(2))
    with pytest.raises(ValueError, match="Normalize must be the last step"):
        B.Compose([B.Normalize([0.5], [0.25]), B.Resize(8)])
    with pytest.raises(ValueError, match="mean has 2 values for images with 1 channels"):
        B.Normalize([0.5, 0.5], [0.25])(np.zeros((2, 1, 8, 8), np.uint8))
