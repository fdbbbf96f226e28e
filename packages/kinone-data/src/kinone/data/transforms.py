"""Image transforms with torchvision's names and arithmetic, on PIL images (or arrays).

    transform = Compose([
        RandomResizedCrop(224, scale=(0.7, 1.0)), RandomHorizontalFlip(), ToTensor(),
        Normalize(mean=[0.5], std=[0.25]),
    ])
    x = transform(Image.open("00000001_000.png").convert("L"))   # a (1, 224, 224) float32 Tensor

The names, arguments and defaults are torchvision's (`torchvision.transforms`, v1): `Compose`,
`ToTensor`, `Normalize`, `Resize`, `CenterCrop`, `Pad`, `RandomCrop`, `RandomHorizontalFlip`,
`RandomVerticalFlip`, `RandomResizedCrop`, `RandomRotation`, `ColorJitter`, `Grayscale`,
`Lambda`, `InterpolationMode`. Image transforms take a PIL image, or an HW / HWC array that PIL
can hold (uint8, and for one channel also uint16, int32, float32, bool), and return the same
kind they were given. On PIL images they compute exactly what torchvision computes (same
sizes, crop boxes, padding, rounding, resampling filters and colour enhancers: the same Pillow
calls), so a model trained with either sees the same pixels; the parity tests check it
against torchvision 0.29. They do not take Tensors (torchvision also transforms CHW tensors):
put them before `ToTensor`. `ToTensor` (a `Tensor`) and `ToArray` (a NumPy array) turn an
image into CHW float32 in [0, 1]; `Normalize` standardizes either.

Random transforms draw from Python's `random` module (torchvision draws from torch's
generator: the same distributions, other numbers). The DataLoader seeds it, NumPy's global
generator and kinone's generator before every sample from (seed, epoch, sample index), so
augmentations are the same with any number of workers, and are reproduced on resume.
"""

from __future__ import annotations

import enum
import math
import numbers
import random
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageEnhance

from kinone.autograd import Tensor

__all__ = [
    "CenterCrop",
    "ColorJitter",
    "Compose",
    "Grayscale",
    "InterpolationMode",
    "Lambda",
    "Normalize",
    "Pad",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "RandomRotation",
    "RandomVerticalFlip",
    "Resize",
    "ToArray",
    "ToTensor",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "to_chw",
]


class InterpolationMode(enum.Enum):
    """torchvision's names for the resampling filters (strings work too: "bilinear", ...)."""

    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


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
    rounded down, as in torchvision), capped at `max_size` if given; `(h, w)` sets both.
    `antialias` is accepted: on PIL images torchvision always antialiases, and so does this."""

    def __init__(self, size, interpolation="bilinear", max_size: int | None = None, antialias: bool | None = True):
        self.size = _check_size(size, "Resize", allow_int=True)
        self.interpolation = _interpolation(interpolation)
        if max_size is not None and (not isinstance(self.size, int) or max_size <= self.size):
            raise ValueError(
                f"Resize: max_size ({max_size}) needs size to be an int (the shorter side) smaller than it; got {size}"
            )
        self.max_size, self.antialias = max_size, antialias

    def __call__(self, img):
        image, kind = _as_image(img, "Resize")
        width, height = image.size
        if isinstance(self.size, int):
            short, long = (width, height) if width <= height else (height, width)
            new_short, new_long = self.size, int(self.size * long / short)
            if self.max_size is not None and new_long > self.max_size:
                new_short, new_long = int(self.max_size * new_short / new_long), self.max_size
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
        top, left = round((height - crop_h) / 2.0), round((width - crop_w) / 2.0)
        return _restore(image.crop((left, top, left + crop_w, top + crop_h)), kind)

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


class RandomResizedCrop:
    """Crop a random part (area fraction in `scale`, aspect ratio w/h in `ratio`, log-uniform)
    and resize it to `size`; after 10 failed tries, a central crop (torchvision's algorithm)."""

    def __init__(
        self,
        size,
        scale=(0.08, 1.0),
        ratio=(3.0 / 4.0, 4.0 / 3.0),
        interpolation="bilinear",
        antialias: bool | None = True,
    ):
        self.size = _check_size(size, "RandomResizedCrop")
        self.antialias = antialias  # PIL images are always antialiased, as in torchvision
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
            w = round(math.sqrt(target_area * aspect_ratio))
            h = round(math.sqrt(target_area / aspect_ratio))
            if 0 < w <= width and 0 < h <= height:
                return random.randint(0, height - h), random.randint(0, width - w), h, w
        in_ratio = width / height
        if in_ratio < min(ratio):
            w, h = width, round(width / min(ratio))
        elif in_ratio > max(ratio):
            h, w = height, round(height * max(ratio))
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
    """`(x - mean[c]) / std[c]` for each channel `c` of a (..., C, H, W) float array or Tensor."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False):
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1)
        if self.mean.size != self.std.size and 1 not in (self.mean.size, self.std.size):
            raise ValueError(f"Normalize: mean and std lengths differ: {self.mean.size} and {self.std.size}")
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: std must not contain zeros; got {self.std.tolist()}")
        self.inplace = inplace

    def __call__(self, array):
        if isinstance(array, Tensor):  # what ToTensor gives: normalized as torchvision does, a Tensor back
            return Tensor(self(array.data))
        if not isinstance(array, np.ndarray) or array.dtype.kind != "f" or array.ndim < 3:
            what = (
                f"array of dtype {array.dtype} and shape {array.shape}"
                if isinstance(array, np.ndarray)
                else type(array).__name__
            )
            raise TypeError(
                f"Normalize: expected a floating (..., C, H, W) array (apply ToTensor or ToArray first); got a {what}"
            )
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


class Lambda:
    """Apply `lambd`, a function of the image, as a transform."""

    def __init__(self, lambd: Callable):
        if not callable(lambd):
            raise TypeError(f"Lambda: argument should be callable; got {type(lambd).__name__}")
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)

    def __repr__(self) -> str:
        return "Lambda()"


class Pad:
    """Pad the sides: `padding` an int (all four), `(left/right, top/bottom)` or `(left, top,
    right, bottom)`; `padding_mode` "constant" (with `fill`, a number or one per channel),
    "edge", "reflect" or "symmetric" (as `numpy.pad`), as torchvision's PIL padding."""

    def __init__(self, padding, fill=0, padding_mode: str = "constant"):
        self.left, self.top, self.right, self.bottom = _check_padding(padding, "Pad")
        if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
            raise ValueError(f"Pad: padding_mode should be constant, edge, reflect or symmetric; got {padding_mode!r}")
        self.padding, self.fill, self.padding_mode = padding, fill, padding_mode

    def __call__(self, img):
        image, kind = _as_image(img, "Pad")
        return _restore(_pad(image, (self.left, self.top, self.right, self.bottom), self.fill, self.padding_mode), kind)

    def __repr__(self) -> str:
        return f"Pad(padding={self.padding}, fill={self.fill}, padding_mode={self.padding_mode})"


class RandomCrop:
    """Crop a random `size` window (int: square; `(h, w)`), every position equally likely; first
    pad by `padding` (see `Pad`) and, with `pad_if_needed`, up to `size` (torchvision's order)."""

    def __init__(self, size, padding=None, pad_if_needed: bool = False, fill=0, padding_mode: str = "constant"):
        self.size = _check_size(size, "RandomCrop")
        self.pad = None if padding is None else Pad(padding, fill, padding_mode)
        self.padding, self.pad_if_needed, self.fill, self.padding_mode = padding, pad_if_needed, fill, padding_mode

    @staticmethod
    def get_params(width: int, height: int, size) -> tuple[int, int, int, int]:
        """The crop box `(top, left, h, w)`, drawn with Python's `random`."""
        crop_h, crop_w = size
        if height < crop_h or width < crop_w:
            raise ValueError(
                f"RandomCrop: required crop size {(crop_h, crop_w)} is larger than the input image size "
                f"{(height, width)} (pass pad_if_needed=True or padding=)"
            )
        if (width, height) == (crop_w, crop_h):
            return 0, 0, height, width
        return random.randint(0, height - crop_h), random.randint(0, width - crop_w), crop_h, crop_w

    def __call__(self, img):
        image, kind = _as_image(img, "RandomCrop")
        if self.pad is not None:
            image = _pad(
                image, (self.pad.left, self.pad.top, self.pad.right, self.pad.bottom), self.fill, self.padding_mode
            )
        crop_h, crop_w = self.size
        if self.pad_if_needed and image.width < crop_w:
            extra = crop_w - image.width
            image = _pad(image, (extra, 0, extra, 0), self.fill, self.padding_mode)
        if self.pad_if_needed and image.height < crop_h:
            extra = crop_h - image.height
            image = _pad(image, (0, extra, 0, extra), self.fill, self.padding_mode)
        top, left, h, w = self.get_params(image.width, image.height, self.size)
        return _restore(image.crop((left, top, left + w, top + h)), kind)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomVerticalFlip:
    """Mirror top-bottom with probability `p`."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, img):
        if random.random() >= self.p:
            return img
        image, kind = _as_image(img, "RandomVerticalFlip")
        return _restore(image.transpose(Image.Transpose.FLIP_TOP_BOTTOM), kind)

    def __repr__(self) -> str:
        return f"RandomVerticalFlip(p={self.p})"


class ColorJitter:
    """Randomly change brightness, contrast, saturation and hue, in a random order.

    Each argument is a number `v` (a factor drawn from `[max(0, 1 - v), 1 + v]`; for hue, an
    offset from `[-v, v]`, `v <= 0.5`) or a `(min, max)` range. The four adjustments are
    torchvision's PIL ones: Pillow's `ImageEnhance` Brightness, Contrast and Color, and a hue
    shift of the HSV image's H channel by `hue * 255` (wrapping around, left alone in grayscale)."""

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0):
        self.brightness = _jitter_range(brightness, "brightness")
        self.contrast = _jitter_range(contrast, "contrast")
        self.saturation = _jitter_range(saturation, "saturation")
        self.hue = _jitter_range(hue, "hue", center=0.0, bound=(-0.5, 0.5), clip_first_on_zero=False)

    def get_params(self) -> tuple[list[int], float | None, float | None, float | None, float | None]:
        """(the order of the four adjustments, and each one's factor or None), drawn with `random`."""
        order = random.sample(range(4), 4)
        factors = [
            None if r is None else random.uniform(r[0], r[1])
            for r in (self.brightness, self.contrast, self.saturation, self.hue)
        ]
        return order, *factors

    def __call__(self, img):
        image, kind = _as_image(img, "ColorJitter")
        order, *factors = self.get_params()
        adjust = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
        for which in order:
            if factors[which] is not None:
                image = adjust[which](image, factors[which])
        return _restore(image, kind)

    def __repr__(self) -> str:
        return (
            f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, saturation={self.saturation}, "
            f"hue={self.hue})"
        )


def adjust_brightness(image: Image.Image, factor: float) -> Image.Image:
    """Blend with black: `factor` 0 gives black, 1 the image (Pillow's ImageEnhance.Brightness)."""
    return ImageEnhance.Brightness(image).enhance(factor)


def adjust_contrast(image: Image.Image, factor: float) -> Image.Image:
    """Blend with the image's mean gray: 0 gives flat gray, 1 the image (ImageEnhance.Contrast)."""
    return ImageEnhance.Contrast(image).enhance(factor)


def adjust_saturation(image: Image.Image, factor: float) -> Image.Image:
    """Blend with the grayscale image: 0 gives gray, 1 the image (ImageEnhance.Color)."""
    return ImageEnhance.Color(image).enhance(factor)


def adjust_hue(image: Image.Image, factor: float) -> Image.Image:
    """Rotate the hue by `factor` of a turn (in [-0.5, 0.5]); grayscale images are left as they are."""
    if not -0.5 <= factor <= 0.5:
        raise ValueError(f"adjust_hue: hue factor must be in [-0.5, 0.5]; got {factor}")
    if image.mode in ("L", "1", "I", "F"):
        return image
    h, s, v = image.convert("HSV").split()
    shifted = np.array(h, dtype=np.uint8)
    shifted += np.int32(factor * 255).astype(np.uint8)  # wraps around, as hue does
    return Image.merge("HSV", (Image.fromarray(shifted, "L"), s, v)).convert(image.mode)


class ToTensor:
    """A PIL image or HW / HWC array to a CHW `Tensor`, as torchvision's `ToTensor`: uint8
    (PIL modes L, RGB, RGBA, P, ...) becomes float32 in [0, 1] (x / 255); other dtypes are
    kept as they are (PIL "I" int32, "I;16" int16, "F" float32; arrays their own dtype), and
    mode "1" becomes 0 / 255 as uint8 would, then / 255."""

    def __call__(self, pic) -> Tensor:
        return Tensor(to_chw(pic, "ToTensor"))

    def __repr__(self) -> str:
        return "ToTensor()"


_PIL_DTYPES = {"I": np.int32, "I;16": np.int16, "F": np.float32}


def to_chw(pic, name: str) -> np.ndarray:
    """torchvision's `to_tensor` arithmetic, on NumPy arrays (see `ToTensor`)."""
    if isinstance(pic, Image.Image):
        array = np.array(pic, _PIL_DTYPES.get(pic.mode, np.uint8), copy=True)
        if pic.mode == "1":
            array = 255 * array
        array = array.reshape(pic.size[1], pic.size[0], len(pic.getbands()))
    elif isinstance(pic, np.ndarray):
        if pic.ndim not in (2, 3):
            raise ValueError(f"{name}: expected an image of shape (H, W) or (H, W, C); got shape {pic.shape}")
        array = pic[:, :, None] if pic.ndim == 2 else pic
    else:
        raise TypeError(f"{name}: expected a PIL image or a NumPy array; got {type(pic).__name__}")
    chw = np.ascontiguousarray(array.transpose(2, 0, 1))
    if chw.dtype == np.uint8:
        return np.divide(chw, np.float32(255), dtype=np.float32)
    return chw


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


def _check_padding(padding, name: str) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) from an int, a 1-, 2- or 4-sequence (torchvision's forms)."""
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        return (int(padding),) * 4
    if isinstance(padding, Sequence) and all(isinstance(p, numbers.Integral) for p in padding):
        if len(padding) == 1:
            return (int(padding[0]),) * 4
        if len(padding) == 2:
            return int(padding[0]), int(padding[1]), int(padding[0]), int(padding[1])
        if len(padding) == 4:
            return tuple(int(p) for p in padding)
    raise ValueError(f"{name}: padding must be an int or a 1, 2 or 4 element sequence of ints; got {padding!r}")


def _pad(image: Image.Image, sides, fill, padding_mode: str) -> Image.Image:
    """`image` padded by (left, top, right, bottom) pixels (negative: cropped), as torchvision's PIL `pad`."""
    crop = [max(0, -p) for p in sides]
    if any(crop):
        image = image.crop((crop[0], crop[1], image.width - crop[2], image.height - crop[3]))
    left, top, right, bottom = (max(0, p) for p in sides)
    array = np.asarray(image)
    widths = ((top, bottom), (left, right)) + (((0, 0),) if array.ndim == 3 else ())
    if padding_mode != "constant":
        padded = np.pad(array, widths, mode=padding_mode)
    else:
        fills = _channel_fill(fill, image, array.shape[2] if array.ndim == 3 else 1)
        padded = np.empty((array.shape[0] + top + bottom, array.shape[1] + left + right, *array.shape[2:]), array.dtype)
        padded[...] = np.asarray(fills, dtype=array.dtype).reshape((-1,) if array.ndim == 3 else ())
        padded[top : top + array.shape[0], left : left + array.shape[1]] = array
    out = Image.fromarray(padded, image.mode if image.mode != "P" else None)
    if image.mode == "P":
        out.putpalette(image.getpalette())
    return out


def _channel_fill(fill, image: Image.Image, channels: int):
    """`fill` as one value per channel, as torchvision's `_parse_fill` makes it (ints but for "F")."""
    if isinstance(fill, (list, tuple)):
        if len(fill) == 1:
            fill = list(fill) * channels
        elif len(fill) != channels:
            raise ValueError(f"fill has {len(fill)} values for an image with {channels} channels")
    else:
        fill = [fill] * channels
    return [float(f) if image.mode == "F" else int(f) for f in fill]


def _jitter_range(value, name: str, center: float = 1.0, bound=(0.0, float("inf")), clip_first_on_zero=True):
    """ColorJitter's range for one adjustment, or None when it does nothing (torchvision's rules)."""
    if isinstance(value, numbers.Number):
        if value < 0:
            raise ValueError(f"ColorJitter: if {name} is a single number, it must be non negative; got {value}")
        low, high = center - float(value), center + float(value)
        if clip_first_on_zero:
            low = max(low, 0.0)
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        low, high = float(value[0]), float(value[1])
    else:
        raise TypeError(f"ColorJitter: {name} should be a single number or a list/tuple with length 2; got {value!r}")
    if not bound[0] <= low <= high <= bound[1]:
        raise ValueError(f"ColorJitter: {name} values should be between {bound}; got {[low, high]}")
    return None if low == high == center else (low, high)


def _interpolation(interpolation) -> Image.Resampling:
    if isinstance(interpolation, InterpolationMode):
        interpolation = interpolation.value
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
    if isinstance(img, Tensor):
        raise TypeError(
            f"{name}: got a Tensor; image transforms take PIL images or HW / HWC arrays, so put {name} before "
            "ToTensor (torchvision also transforms CHW tensors; Kinone does not)"
        )
    raise TypeError(f"{name}: expected a PIL image or a NumPy array; got {type(img).__name__}")


def _restore(image: Image.Image, kind: str | None):
    if kind is None:
        return image
    array = np.array(image)  # writeable (np.asarray of a PIL image is read-only)
    return array[:, :, None] if kind == "HW1" else array
