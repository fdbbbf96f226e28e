"""Image transforms with torchvision's names and arithmetic, on PIL images (or arrays).

    transform = Compose([
        RandomResizedCrop(224, scale=(0.7, 1.0)), RandomHorizontalFlip(), ToArray(),
        Normalize(mean=[0.5], std=[0.25]),
    ])
    x = transform(Image.open("00000001_000.png").convert("L"))   # (1, 224, 224) float32

Geometric transforms (`Resize`, `CenterCrop`, `RandomResizedCrop`, `RandomHorizontalFlip`,
`RandomRotation`, `Grayscale`) take a PIL image, or an HW / HWC array that PIL can hold (uint8,
and for one channel also uint16, int32, float32, bool), and return the same kind they were
given. They compute exactly what torchvision computes on PIL images (same sizes, crop boxes,
rounding, resampling filters), so a model trained with either sees the same pixels.
`ToArray` turns an image into a CHW float32 array and `Normalize` standardizes its channels.

Random transforms draw from Python's `random` module. The DataLoader seeds it (and NumPy's
global generator) before every batch from `(seed, epoch, batch index)`, so augmentations are
the same with any number of workers, and are reproduced on resume.
"""

from __future__ import annotations

import math
import numbers
import random
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

_INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
    "lanczos": Image.Resampling.LANCZOS,
}


class Compose:
    """Apply `transforms` one after the other."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, img):
        for transform in self.transforms:
            img = transform(img)
        return img

    def __repr__(self) -> str:
        lines = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{lines}\n])"


class Resize:
    """Resize to `size`: an int sets the shorter side (the longer one keeps the aspect ratio,
    rounded down, as in torchvision); `(h, w)` sets both."""

    def __init__(self, size, interpolation="bilinear"):
        self.size = _check_size(size, "Resize", allow_int=True)
        self.interpolation = _interpolation(interpolation)

    def __call__(self, img):
        image, kind = _as_image(img, "Resize")
        width, height = image.size
        if isinstance(self.size, int):
            short, long = (width, height) if width <= height else (height, width)
            new_short, new_long = self.size, int(self.size * long / short)
            new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
        else:
            new_h, new_w = self.size
        if (new_w, new_h) != (width, height):
            image = image.resize((new_w, new_h), self.interpolation)
        return _restore(image, kind)

    def __repr__(self) -> str:
        return f"Resize(size={self.size}, interpolation={self.interpolation.name.lower()})"


class CenterCrop:
    """Crop the centre `size` (int: square; `(h, w)`), padding with zeros where the image is smaller."""

    def __init__(self, size):
        self.size = _check_size(size, "CenterCrop")

    def __call__(self, img):
        image, kind = _as_image(img, "CenterCrop")
        crop_h, crop_w = self.size
        width, height = image.size
        if crop_w > width or crop_h > height:  # torchvision pads first, the extra pixel on the right/bottom
            left, top = max(0, (crop_w - width) // 2), max(0, (crop_h - height) // 2)
            padded = Image.new(image.mode, (max(width, crop_w), max(height, crop_h)))
            padded.paste(image, (left, top))
            image = padded
            width, height = image.size
        top, left = int(round((height - crop_h) / 2.0)), int(round((width - crop_w) / 2.0))
        return _restore(image.crop((left, top, left + crop_w, top + crop_h)), kind)

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


class RandomResizedCrop:
    """Crop a random part (area fraction in `scale`, aspect ratio w/h in `ratio`, log-uniform)
    and resize it to `size`; after 10 failed tries, a central crop (torchvision's algorithm)."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0), interpolation="bilinear"):
        self.size = _check_size(size, "RandomResizedCrop")
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            raise ValueError(f"RandomResizedCrop: scale and ratio must be (min, max); got {scale}, {ratio}")
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.interpolation = _interpolation(interpolation)

    @staticmethod
    def get_params(width: int, height: int, scale, ratio) -> tuple[int, int, int, int]:
        """The crop box `(top, left, h, w)`, drawn with Python's `random`."""
        area = height * width
        log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        for _ in range(10):
            target_area = area * random.uniform(scale[0], scale[1])
            aspect_ratio = math.exp(random.uniform(*log_ratio))
            w = int(round(math.sqrt(target_area * aspect_ratio)))
            h = int(round(math.sqrt(target_area / aspect_ratio)))
            if 0 < w <= width and 0 < h <= height:
                return random.randint(0, height - h), random.randint(0, width - w), h, w
        in_ratio = width / height
        if in_ratio < min(ratio):
            w, h = width, int(round(width / min(ratio)))
        elif in_ratio > max(ratio):
            h, w = height, int(round(height * max(ratio)))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img):
        image, kind = _as_image(img, "RandomResizedCrop")
        top, left, h, w = self.get_params(*image.size, self.scale, self.ratio)
        crop = image.crop((left, top, left + w, top + h))
        return _restore(crop.resize((self.size[1], self.size[0]), self.interpolation), kind)

    def __repr__(self) -> str:
        return (
            f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio}, "
            f"interpolation={self.interpolation.name.lower()})"
        )


class RandomHorizontalFlip:
    """Mirror left-right with probability `p`."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, img):
        if random.random() >= self.p:
            return img
        image, kind = _as_image(img, "RandomHorizontalFlip")
        return _restore(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), kind)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomRotation:
    """Rotate by an angle drawn uniformly from `(-degrees, degrees)` (or from `degrees = (a, b)`),
    counter-clockwise, about the centre; uncovered corners get `fill`."""

    def __init__(self, degrees, interpolation="nearest", expand: bool = False, center=None, fill=0):
        if isinstance(degrees, numbers.Number):
            if degrees < 0:
                raise ValueError(f"RandomRotation: degrees must be non-negative when a single number; got {degrees}")
            degrees = (-degrees, degrees)
        if len(degrees) != 2:
            raise ValueError(f"RandomRotation: degrees must be a number or (min, max); got {degrees}")
        self.degrees = (float(degrees[0]), float(degrees[1]))
        self.interpolation = _interpolation(interpolation)
        self.expand, self.center, self.fill = expand, center, fill

    def __call__(self, img):
        image, kind = _as_image(img, "RandomRotation")
        angle = random.uniform(*self.degrees)
        fill = self.fill
        if isinstance(fill, numbers.Number) and len(image.getbands()) > 1:
            fill = (fill,) * len(image.getbands())
        rotated = image.rotate(angle, self.interpolation, expand=self.expand, center=self.center, fillcolor=fill)
        return _restore(rotated, kind)

    def __repr__(self) -> str:
        return f"RandomRotation(degrees={self.degrees}, interpolation={self.interpolation.name.lower()})"


class Grayscale:
    """Convert to grayscale (PIL's ITU-R 601-2 luma), with 1 or 3 identical output channels."""

    def __init__(self, num_output_channels: int = 1):
        if num_output_channels not in (1, 3):
            raise ValueError(f"Grayscale: num_output_channels must be 1 or 3; got {num_output_channels}")
        self.num_output_channels = num_output_channels

    def __call__(self, img):
        image, kind = _as_image(img, "Grayscale")
        gray = image if image.mode == "L" else image.convert("L")
        if self.num_output_channels == 3:
            gray = Image.merge("RGB", [gray, gray, gray])
            if kind == "HW1":
                kind = "HWC"
        elif kind == "HWC":
            kind = "HW1"
        return _restore(gray, kind)

    def __repr__(self) -> str:
        return f"Grayscale(num_output_channels={self.num_output_channels})"


class ToArray:
    """A PIL image or HW / HWC array to a CHW float32 array; uint8 is scaled to [0, 1] (x / 255),
    uint16 likewise (x / 65535), bool to 0 / 1, floating point kept as it is."""

    def __call__(self, img) -> np.ndarray:
        array = np.asarray(img)
        if array.ndim not in (2, 3):
            raise ValueError(f"ToArray: expected an image of shape (H, W) or (H, W, C); got shape {array.shape}")
        chw = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
        out = np.empty(chw.shape, dtype=np.float32)
        scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(array.dtype)
        if scale is not None:
            np.divide(chw, np.float32(scale), out=out, dtype=np.float32)
        elif array.dtype.kind in "biuf":
            out[...] = chw
        else:
            raise TypeError(f"ToArray: cannot convert an image of dtype {array.dtype}")
        return out

    def __repr__(self) -> str:
        return "ToArray()"


class Normalize:
    """`(x - mean[c]) / std[c]` for each channel `c` of a (..., C, H, W) float array."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False):
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1)
        if self.mean.size != self.std.size and 1 not in (self.mean.size, self.std.size):
            raise ValueError(f"Normalize: mean and std lengths differ: {self.mean.size} and {self.std.size}")
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: std must not contain zeros; got {self.std.tolist()}")
        self.inplace = inplace

    def __call__(self, array: np.ndarray) -> np.ndarray:
        if not isinstance(array, np.ndarray) or array.dtype.kind != "f" or array.ndim < 3:
            what = (
                f"array of dtype {array.dtype} and shape {array.shape}"
                if isinstance(array, np.ndarray)
                else type(array).__name__
            )
            raise TypeError(f"Normalize: expected a floating (..., C, H, W) array (apply ToArray first); got a {what}")
        channels = array.shape[-3]
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values.size not in (1, channels):
                raise ValueError(f"Normalize: {name} has {values.size} values for an image with {channels} channels")
        out = array if self.inplace else array.copy()
        out -= self.mean[:, None, None].astype(out.dtype, copy=False)
        out /= self.std[:, None, None].astype(out.dtype, copy=False)
        return out

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


# ---------------------------------------------------------------------------- helpers
def _check_size(size, name: str, allow_int: bool = False):
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        if size <= 0:
            raise ValueError(f"{name}: size must be positive; got {size}")
        return int(size) if allow_int else (int(size), int(size))
    if isinstance(size, Sequence) and len(size) == 1:
        return _check_size(size[0], name, allow_int)
    if isinstance(size, Sequence) and len(size) == 2 and all(isinstance(s, numbers.Integral) and s > 0 for s in size):
        return (int(size[0]), int(size[1]))
    raise ValueError(f"{name}: size must be a positive int or a (height, width) pair; got {size!r}")


def _interpolation(interpolation) -> Image.Resampling:
    if isinstance(interpolation, str):
        try:
            return _INTERPOLATIONS[interpolation.lower()]
        except KeyError:
            raise ValueError(
                f"unknown interpolation {interpolation!r}; expected one of {sorted(_INTERPOLATIONS)}"
            ) from None
    return Image.Resampling(interpolation)


def _as_image(img, name: str) -> tuple[Image.Image, str | None]:
    """The PIL image to work on, and how to give the result back (None: as a PIL image)."""
    if isinstance(img, Image.Image):
        return img, None
    if isinstance(img, np.ndarray):
        kind = "HW" if img.ndim == 2 else "HW1" if img.ndim == 3 and img.shape[2] == 1 else "HWC"
        array = img[:, :, 0] if kind == "HW1" else img
        try:
            return Image.fromarray(np.ascontiguousarray(array)), kind
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"{name}: cannot treat an array of shape {img.shape} and dtype {img.dtype} as an image ({error}); "
                "geometric transforms take PIL images or HW / HWC arrays, before ToArray"
            ) from None
    raise TypeError(f"{name}: expected a PIL image or a NumPy array; got {type(img).__name__}")


def _restore(image: Image.Image, kind: str | None):
    if kind is None:
        return image
    array = np.array(image)  # writeable (np.asarray of a PIL image is read-only)
    return array[:, :, None] if kind == "HW1" else array
