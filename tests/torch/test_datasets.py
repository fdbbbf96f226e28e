"""kinone.torchvision.datasets: MNIST from raw IDX files (as torchvision lays them out), FakeData."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from kinone.torchvision import datasets, transforms


def write_idx(path, array: np.ndarray, compress: bool) -> None:
    code = {np.dtype(np.uint8): 0x08}[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">i4").tobytes()
    raw = header + array.tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        raw = gzip.compress(raw)
    path.write_bytes(raw)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_reads_the_raw_files(tmp_path, compress):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), rng.integers(0, 10, 5).astype(np.uint8)
    write_idx(raw / "t10k-images-idx3-ubyte", images, compress)
    write_idx(raw / "t10k-labels-idx1-ubyte", labels, compress)
    dataset = datasets.MNIST(tmp_path, train=False, transform=transforms.ToTensor())
    assert len(dataset) == 5
    image, target = dataset[2]
    assert image.shape == (1, 28, 28) and target == int(labels[2])
    np.testing.assert_allclose(np.asarray(image.data)[0], images[2] / 255.0, atol=1e-7)


def test_missing_files_are_named_and_nothing_is_downloaded(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"no train-images-idx3-ubyte, train-labels-idx1-ubyte\[.gz\] in .*MNIST/raw"
    ):
        datasets.MNIST(tmp_path, train=True, download=True)


def test_a_truncated_idx_file_is_refused(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "t10k-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8), False)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1]) + np.array([3], ">i4").tobytes() + b"\x01")
    with pytest.raises(ValueError, match="holds 9 bytes; its header"):
        datasets.MNIST(tmp_path, train=False)


def test_fake_data_is_the_same_for_the_same_index():
    data = datasets.FakeData(size=4, image_size=(1, 8, 6), num_classes=3, transform=transforms.ToTensor())
    a, ta = data[1]
    b, tb = data[1]
    assert a.shape == (1, 8, 6) and 0 <= ta < 3 and ta == tb
    np.testing.assert_array_equal(a.data, b.data)
    with pytest.raises(IndexError):
        data[4]
