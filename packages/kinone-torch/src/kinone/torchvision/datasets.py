"""`torchvision.datasets`: MNIST and FashionMNIST from their raw files, and FakeData.

Nothing is downloaded (Kinone's machines may have no internet): `download=True` finds the
files already there or fails naming the files to fetch and where to put them. The raw IDX
files (`train-images-idx3-ubyte[.gz]` ...) are read as torchvision does, from
`<root>/<ClassName>/raw/`; samples are PIL images (mode "L") and int targets, as torchvision's.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import ClassVar

import numpy as np

from kinone.data import Dataset

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip-compressed or not) as an array: magic (0, 0, type, ndim), the dims
    as big-endian int32, then the data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as file:
        raw = file.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"kinone.torchvision.datasets: {path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = np.frombuffer(raw, ">i4", count=ndim, offset=4).astype(int)
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = 4 + 4 * ndim + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"kinone.torchvision.datasets: {path} holds {len(raw)} bytes; its header {tuple(dims)} needs {expected}"
        )
    return np.frombuffer(raw, dtype, offset=4 + 4 * ndim).reshape(dims)


class MNIST(Dataset):
    """torchvision's MNIST: (PIL image, int) pairs from the raw IDX files under `root`."""

    files: ClassVar[dict] = {
        True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }
    classes: ClassVar[list] = [
        f"{i} - {name}"
        for i, name in enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    ]

    def __init__(self, root, train: bool = True, transform=None, target_transform=None, download: bool = False):
        self.root, self.train = Path(root), train
        self.transform, self.target_transform = transform, target_transform
        raw = self.root / type(self).__name__ / "raw"
        paths = [self._find(raw, name) for name in self.files[train]]
        missing = [name for name, p in zip(self.files[train], paths) if p is None]
        if missing:
            raise FileNotFoundError(
                f"kinone.torchvision.datasets.{type(self).__name__}: no {', '.join(missing)}[.gz] in {raw} "
                f"(Kinone downloads nothing{'; download=True only looks there' if download else ''}: put the raw files there)"
            )
        self.data, self.targets = read_idx(paths[0]), read_idx(paths[1]).astype(np.int64)
        if len(self.data) != len(self.targets):
            raise ValueError(
                f"kinone.torchvision.datasets: {raw}: {len(self.data)} images but {len(self.targets)} labels"
            )

    @staticmethod
    def _find(folder: Path, name: str) -> Path | None:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
        return None

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        from PIL import Image

        image, target = Image.fromarray(self.data[index], mode="L"), int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target


class FashionMNIST(MNIST):
    classes: ClassVar[list] = [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]


class FakeData(Dataset):
    """torchvision's FakeData: `size` random PIL images of `image_size` (C, H, W) and random
    targets, the same ones for the same `random_offset` (each drawn from its index)."""

    def __init__(
        self,
        size: int = 1000,
        image_size=(3, 224, 224),
        num_classes: int = 10,
        transform=None,
        target_transform=None,
        random_offset: int = 0,
    ):
        self.size, self.image_size, self.num_classes = size, tuple(image_size), num_classes
        self.transform, self.target_transform, self.random_offset = transform, target_transform, random_offset

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int):
        from PIL import Image

        if not 0 <= index < self.size:
            raise IndexError(f"FakeData: index {index} out of range for {self.size} samples")
        rng = np.random.default_rng(index + self.random_offset)
        channels, height, width = self.image_size
        pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
        image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode="L" if channels == 1 else "RGB")
        target = int(rng.integers(0, self.num_classes))
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target
