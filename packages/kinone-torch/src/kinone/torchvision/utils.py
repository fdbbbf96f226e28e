"""`torchvision.utils`: `make_grid` and `save_image` (a PNG, or any format Pillow writes).

As torchvision's: a batch (B, C, H, W) is laid out `nrow` images a row with `padding` pixels
of `pad_value` between them; one-channel images become three; `normalize=True` maps
`value_range` (default: the min and max of the batch, or of each image with `scale_each`)
to [0, 1]; `save_image` writes round(255 * x) clamped to [0, 255] as 8-bit pixels. The file
is written atomically (a temporary file renamed into place).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from kinone.autograd import Tensor, backend


def _host(value) -> np.ndarray:
    if isinstance(value, Tensor):
        value = value.data
    return np.asarray(backend.to_host(value))


def _as_batch(tensor) -> np.ndarray:
    if isinstance(tensor, (list, tuple)):
        tensor = np.stack([_host(t) for t in tensor])
    array = _host(tensor).astype(np.float32, copy=True)
    if array.ndim == 2:
        array = array[None]
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise ValueError(
            f"kinone.torchvision.utils.make_grid: expected (B, C, H, W), (C, H, W) or (H, W), got {array.shape}"
        )
    if array.shape[1] == 1:
        array = np.repeat(array, 3, axis=1)
    return array


def _normalize(images: np.ndarray, value_range, scale_each: bool) -> np.ndarray:
    if value_range is not None and not (isinstance(value_range, tuple) and len(value_range) == 2):
        raise TypeError("kinone.torchvision.utils.make_grid: value_range has to be a tuple (min, max) if specified")
    groups = images if scale_each else images[None]
    for group in groups:
        low, high = value_range if value_range is not None else (float(group.min()), float(group.max()))
        np.clip(group, low, high, out=group)
        group -= low
        group /= max(high - low, 1e-5)
    return images


def make_grid(
    tensor,
    nrow: int = 8,
    padding: int = 2,
    normalize: bool = False,
    value_range=None,
    scale_each: bool = False,
    pad_value: float = 0.0,
) -> Tensor:
    """The images of `tensor` in one (3, H', W') image, `nrow` a row (module docstring)."""
    images = _as_batch(tensor)
    if normalize:
        images = _normalize(images, value_range, scale_each)
    if images.shape[0] == 1:
        return Tensor(images[0])
    count, channels, height, width = images.shape
    columns = min(nrow, count)
    rows = math.ceil(count / columns)
    cell_h, cell_w = height + padding, width + padding
    grid = np.full((channels, cell_h * rows + padding, cell_w * columns + padding), pad_value, np.float32)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = row * cell_h + padding, column * cell_w + padding
        grid[:, top : top + height, left : left + width] = image
    return Tensor(grid)


def save_image(tensor, fp, format: str | None = None, **kwargs) -> None:
    """Write `make_grid(tensor, **kwargs)` as an 8-bit image file at the path `fp`."""
    from PIL import Image

    if not isinstance(fp, (str, os.PathLike)):
        raise TypeError(f"kinone.torchvision.utils.save_image: give a file path (str or Path), got {type(fp).__name__}")
    grid = _host(make_grid(tensor, **kwargs))
    pixels = np.clip(grid * 255 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    path = Path(fp)
    kind = format or Image.registered_extensions().get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"kinone.torchvision.utils.save_image: {path}: unknown image extension; pass format=")
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with open(temporary, "wb") as file:
            Image.fromarray(pixels).save(file, format=kind)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
