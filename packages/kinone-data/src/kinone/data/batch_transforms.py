"""Augmentations of a whole batch of uint8 images at once: NumPy on the host, CuPy on a GPU.

    augment = Compose([RandomResizedCrop(224, scale=(0.7, 1.0)), RandomRotation(5), Normalize([0.5], [0.25])])
    x = augment(images, keys)     # images: uint8 (N, 1, H, W) or (N, H, W); x: float32 (N, 1, 224, 224)

The batch path of `kinone.data.transforms`, for images read from an image cache (kinone.data.cache):
the same names and parameters (torchvision's), computed for the whole batch in a few large
array operations, with no Python loop over images (the random parameters too are drawn as
arrays). The same code runs on CuPy when `images` is a device array
(`kinone.autograd.backend.get_array_module`), so a batch can be augmented after its copy to
the GPU.

Randomness. Each image has a 64-bit key; every random parameter of image `n` is a hash of
(its key, the step's position in `Compose`, the draw number) (splitmix64, a counter-based
generator), so an image gets the same crop whatever batch it is in, its position there, the
batch size, the number of workers or the device. Keys come from `sample_keys(seed, epoch,
indices)` (a hash of the three), or, inside a `DataLoader`, from `KeyedDataset`, which adds to
each sample a key drawn from NumPy's global generator: the loader seeds that generator from
(seed, epoch, dataset index) before loading a sample, so the key is a function of those three
in any process and on resume, as the PIL transforms' draws are.

Geometry. Consecutive geometric steps are fused into one affine map per image and the batch
is resampled once (bilinear; one interpolation, not one per step). Crops, resizes and flips
are separable (rows, then columns: two gathers of whole rows and columns), with coordinates
clamped at the border as in torchvision's `resize`; with a rotation every output pixel is
gathered from 4 neighbours and corners outside the image get `fill`. Crops and flips alone
(`RandomCrop`, `CenterCrop`, `RandomHorizontalFlip`) move whole pixels: exact uint8 copies.
Unlike Pillow, a shrinking resize is not antialiased: keep the cache's size near the
training size (256 -> 224 is a 0.875 scale, where bilinear is fine) and let kinone-prepare
do the large reduction, antialiased, once.

Chest X-rays: `RandomHorizontalFlip` is available but is not in kinone-train's pipeline. A
flipped radiograph puts the heart on the right (situs inversus, ~1 in 10,000 people): the
model would learn from anatomy it never sees at test time, and positional findings
(Cardiomegaly's shadow, left/right effusions) lose their side. CheXNet did flip; small
rotations and crops are the safer default.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

from kinone.autograd.backend import get_array_module

_GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / golden ratio: splitmix64's increment
_MASK = 2**64 - 1


# ---------------------------------------------------------------------------- keys and draws
def _mix(z, xp):
    """splitmix64's finalizer on a uint64 array (wrapping arithmetic): a bijective hash."""
    z = (z ^ (z >> xp.uint64(30))) * xp.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> xp.uint64(27))) * xp.uint64(0x94D049BB133111EB)
    return z ^ (z >> xp.uint64(31))


def sample_keys(seed: int, epoch: int, indices, xp=np):
    """The uint64 key of each of `indices` (dataset indices) in `epoch`: a hash of (seed, epoch, index)."""
    indices = xp.asarray(indices).astype(xp.uint64)
    base = _mix(xp.asarray([(int(seed) * _GOLDEN + 1) & _MASK], dtype=xp.uint64), xp)
    base = _mix(base + xp.uint64((int(epoch) * _GOLDEN + 2) & _MASK), xp)
    return _mix(base + indices * xp.uint64(_GOLDEN), xp)


def uniform(keys, stream: int, draws: int):
    """float64 (N, draws) in [0, 1): draw `d` of image `n` is a hash of (keys[n], stream, d)."""
    xp = get_array_module(keys)
    counters = xp.arange(1, draws + 1, dtype=xp.uint64) + xp.uint64((int(stream) << 32) & _MASK)
    z = _mix(keys[:, None] ^ _mix(counters * xp.uint64(_GOLDEN), xp)[None, :], xp)
    return (z >> xp.uint64(11)).astype(xp.float64) * (1.0 / 2**53)


def _keys_for(images, keys):
    xp = get_array_module(images)
    keys = xp.asarray(keys)
    if keys.ndim != 1 or keys.shape[0] != images.shape[0]:
        raise ValueError(
            f"batch transforms: expected one key per image, {images.shape[0]}; got keys of shape {keys.shape}"
        )
    if keys.dtype.kind not in "iu":
        raise TypeError(f"batch transforms: keys must be integers; got {keys.dtype}")
    return keys.astype(xp.uint64)


# ---------------------------------------------------------------------------- geometric steps
class _Geometric:
    """A step mapping each output pixel to a point of its input: `plan` returns, per image, the
    3 x 3 matrix taking output coordinates (x, y, 1) (pixel centres at k + 0.5) to input ones."""

    integer = False  # moves whole pixels only (crop, flip): no resampling needed
    rotates = False  # the map mixes x and y: not separable

    def plan(self, keys, stream: int, height: int, width: int):
        raise NotImplementedError

    def __call__(self, images, keys=None):
        return Compose([self])(images, keys)


def _affine(xp, n, sx=1.0, tx=0.0, sy=1.0, ty=0.0):
    """(n, 3, 3) float64 maps x_in = sx * x_out + tx, y_in = sy * y_out + ty."""
    matrix = xp.zeros((n, 3, 3), dtype=xp.float64)
    matrix[:, 0, 0], matrix[:, 0, 2], matrix[:, 1, 1], matrix[:, 1, 2], matrix[:, 2, 2] = sx, tx, sy, ty, 1.0
    return matrix


def _size(size, name: str) -> tuple[int, int]:
    if isinstance(size, numbers.Integral) and not isinstance(size, bool) and size > 0:
        return int(size), int(size)
    if isinstance(size, Sequence) and len(size) == 2 and all(isinstance(s, numbers.Integral) and s > 0 for s in size):
        return int(size[0]), int(size[1])
    raise ValueError(f"{name}: size must be a positive int or a (height, width) pair; got {size!r}")


class RandomResizedCrop(_Geometric):
    """A random part (area fraction in `scale`, aspect ratio w/h log-uniform in `ratio`; 10
    tries, then a central crop: torchvision's algorithm, drawn for the whole batch at once)
    resized to `size` (bilinear)."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0)):
        self.size = _size(size, "RandomResizedCrop")
        if not (0 < scale[0] <= scale[1] and 0 < ratio[0] <= ratio[1]):
            raise ValueError(f"RandomResizedCrop: scale and ratio must be positive (min, max); got {scale}, {ratio}")
        self.scale, self.ratio = (float(scale[0]), float(scale[1])), (float(ratio[0]), float(ratio[1]))

    def boxes(self, keys, stream: int, height: int, width: int):
        """(top, left, h, w) of each image's crop, float64 arrays of integers."""
        xp = get_array_module(keys)
        draws = uniform(keys, stream, 22)
        area = height * width
        target = area * (self.scale[0] + (self.scale[1] - self.scale[0]) * draws[:, :10])
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = xp.exp(log_lo + (log_hi - log_lo) * draws[:, 10:20])
        w, h = xp.rint(xp.sqrt(target * aspect)), xp.rint(xp.sqrt(target / aspect))
        fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
        first = xp.argmax(fits, axis=1)[:, None]
        w, h = xp.take_along_axis(w, first, 1)[:, 0], xp.take_along_axis(h, first, 1)[:, 0]
        fallback_h, fallback_w = self._central(height, width)
        found = fits.any(axis=1)
        h, w = xp.where(found, h, float(fallback_h)), xp.where(found, w, float(fallback_w))
        top = xp.where(found, xp.floor(draws[:, 20] * (height - h + 1)), xp.floor((height - h) / 2))
        left = xp.where(found, xp.floor(draws[:, 21] * (width - w + 1)), xp.floor((width - w) / 2))
        return top, left, h, w

    def _central(self, height: int, width: int) -> tuple[int, int]:
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            return int(round(width / self.ratio[0])), width
        if in_ratio > self.ratio[1]:
            return height, int(round(height * self.ratio[1]))
        return height, width

    def plan(self, keys, stream, height, width):
        top, left, h, w = self.boxes(keys, stream, height, width)
        out_h, out_w = self.size
        return _affine(get_array_module(keys), len(keys), w / out_w, left, h / out_h, top), out_h, out_w

    def __repr__(self) -> str:
        return f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio})"


class Resize(_Geometric):
    """Resize to `size` (bilinear, not antialiased: see the module docstring)."""

    def __init__(self, size):
        self.size = _size(size, "Resize")

    def plan(self, keys, stream, height, width):
        out_h, out_w = self.size
        return _affine(get_array_module(keys), len(keys), width / out_w, 0.0, height / out_h, 0.0), out_h, out_w

    def __repr__(self) -> str:
        return f"Resize(size={self.size})"


class RandomCrop(_Geometric):
    """A `size` crop at a random place (every place equally likely): a copy, no resampling."""

    integer = True

    def __init__(self, size):
        self.size = _size(size, "RandomCrop")

    def plan(self, keys, stream, height, width):
        out_h, out_w = _fits(self.size, height, width, "RandomCrop")
        draws = uniform(keys, stream, 2)
        top, left = _floor(draws[:, 0] * (height - out_h + 1)), _floor(draws[:, 1] * (width - out_w + 1))
        return _affine(get_array_module(keys), len(keys), 1.0, left, 1.0, top), out_h, out_w

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size})"


class CenterCrop(_Geometric):
    """The central `size` crop (torchvision's rounding): a copy."""

    integer = True

    def __init__(self, size):
        self.size = _size(size, "CenterCrop")

    def plan(self, keys, stream, height, width):
        out_h, out_w = _fits(self.size, height, width, "CenterCrop")
        top, left = int(round((height - out_h) / 2.0)), int(round((width - out_w) / 2.0))
        return _affine(get_array_module(keys), len(keys), 1.0, float(left), 1.0, float(top)), out_h, out_w

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


class RandomHorizontalFlip(_Geometric):
    """Mirror left-right with probability `p` (not for chest X-rays by default: see the module docstring)."""

    integer = True

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1]; got {p}")
        self.p = float(p)

    def plan(self, keys, stream, height, width):
        xp = get_array_module(keys)
        flip = uniform(keys, stream, 1)[:, 0] < self.p
        return _affine(xp, len(keys), xp.where(flip, -1.0, 1.0), xp.where(flip, float(width), 0.0)), height, width

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomRotation(_Geometric):
    """Rotate counter-clockwise about the centre by an angle uniform in `(-degrees, degrees)`
    (or `degrees = (a, b)`), keeping the size; uncovered corners get `fill` (a gray level)."""

    rotates = True

    def __init__(self, degrees, fill: float = 0.0):
        if isinstance(degrees, numbers.Number):
            if degrees < 0:
                raise ValueError(f"RandomRotation: degrees must be non-negative when a single number; got {degrees}")
            degrees = (-degrees, degrees)
        if len(degrees) != 2 or degrees[0] > degrees[1]:
            raise ValueError(f"RandomRotation: degrees must be a number or (min, max); got {degrees}")
        self.degrees, self.fill = (float(degrees[0]), float(degrees[1])), float(fill)

    def plan(self, keys, stream, height, width):
        xp = get_array_module(keys)
        angle = xp.deg2rad(self.degrees[0] + (self.degrees[1] - self.degrees[0]) * uniform(keys, stream, 1)[:, 0])
        cos, sin = xp.cos(angle), xp.sin(angle)
        cx, cy = width / 2.0, height / 2.0
        # Pillow's Image.rotate: input = R(-angle) (output - centre) + centre, y pointing down.
        matrix = _affine(xp, len(keys))
        matrix[:, 0, 0], matrix[:, 0, 1], matrix[:, 1, 0], matrix[:, 1, 1] = cos, -sin, sin, cos
        matrix[:, 0, 2] = cx - cos * cx + sin * cy
        matrix[:, 1, 2] = cy - sin * cx - cos * cy
        return matrix, height, width

    def __repr__(self) -> str:
        return f"RandomRotation(degrees={self.degrees}, fill={self.fill})"


def _floor(values):
    return get_array_module(values).floor(values)


def _fits(size, height, width, name):
    if size[0] > height or size[1] > width:
        raise ValueError(f"{name}: crop {size[0]} x {size[1]} is larger than the images, {height} x {width}")
    return size


# ---------------------------------------------------------------------------- normalization
class Normalize:
    """uint8 -> float32 `(x / 255 - mean[c]) / std[c]` per channel (fused into the resampling)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = [float(m) for m in np.atleast_1d(mean)]
        self.std = [float(s) for s in np.atleast_1d(std)]
        if len(self.mean) != len(self.std) and 1 not in (len(self.mean), len(self.std)):
            raise ValueError(f"Normalize: mean and std lengths differ: {len(self.mean)} and {len(self.std)}")
        if any(s == 0 for s in self.std):
            raise ValueError(f"Normalize: std must not contain zeros; got {self.std}")

    def scale_offset(self, channels: int, xp):
        """(scale, offset) of shape (C, 1, 1): x * scale + offset = (x / 255 - mean) / std."""
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, channels):
                raise ValueError(f"Normalize: {name} has {len(values)} values for images with {channels} channels")
        mean = np.broadcast_to(np.asarray(self.mean), (channels,))
        std = np.broadcast_to(np.asarray(self.std), (channels,))
        scale = xp.asarray((1.0 / (255.0 * std)).astype(np.float32)).reshape(channels, 1, 1)
        offset = xp.asarray((-mean / std).astype(np.float32)).reshape(channels, 1, 1)
        return scale, offset

    def __call__(self, images, keys=None):
        return Compose([self])(images, keys)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


# ---------------------------------------------------------------------------- the pipeline
class Compose:
    """Apply `steps` (geometric steps, then at most one `Normalize`, last) to a uint8 batch.

    `augment(images, keys)`: `images` uint8 (N, C, H, W) or (N, H, W), NumPy or CuPy; `keys`
    one integer per image (`sample_keys`, `KeyedDataset`; None only for steps without
    randomness). Returns the same layout: float32 after `Normalize`, else uint8."""

    def __init__(self, steps: Sequence):
        self.steps = list(steps)
        normalize = [i for i, s in enumerate(self.steps) if isinstance(s, Normalize)]
        if normalize and normalize != [len(self.steps) - 1]:
            raise ValueError("batch transforms Compose: Normalize must be the last step, and only once")
        for step in self.steps:
            if not isinstance(step, (_Geometric, Normalize)):
                raise TypeError(f"batch transforms Compose: {step!r} is not a kinone.data.batch_transforms step")
        self.geometric = [s for s in self.steps if isinstance(s, _Geometric)]
        self.normalize = self.steps[-1] if normalize else None

    def __call__(self, images, keys=None):
        xp = get_array_module(images)
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise TypeError(
                f"batch transforms: expected uint8 images of shape (N, C, H, W) or (N, H, W); "
                f"got {images.dtype} {tuple(images.shape)}"
            )
        batch = images if images.ndim == 4 else images[:, None]
        n, channels, height, width = batch.shape
        if keys is None:
            keys = xp.zeros(n, dtype=xp.uint64)
        keys = _keys_for(images, keys)
        matrix, out_h, out_w = self.plan(keys, height, width)
        scale_offset = self.normalize.scale_offset(channels, xp) if self.normalize is not None else None
        if matrix is None:
            out = batch if scale_offset is None else batch * scale_offset[0] + scale_offset[1]
        elif all(s.integer for s in self.geometric):
            out = _copy_pixels(batch, matrix, out_h, out_w)
            if scale_offset is not None:
                out = out * scale_offset[0] + scale_offset[1]
        elif any(s.rotates for s in self.geometric):
            fill = next(s.fill for s in self.geometric if s.rotates)
            out = _warp(batch, matrix, out_h, out_w, fill, scale_offset)
        else:
            out = _resample_separable(batch, matrix, out_h, out_w, scale_offset)
        out = out.astype(xp.float32, copy=False) if scale_offset is not None else out
        return out if images.ndim == 4 else out[:, 0]

    def plan(self, keys, height: int, width: int):
        """The fused (N, 3, 3) map from output to input coordinates and the output size
        (None for the map when there is no geometric step)."""
        matrix = None
        for position, step in enumerate(self.steps):
            if isinstance(step, _Geometric):
                step_matrix, height, width = step.plan(keys, position, height, width)
                matrix = step_matrix if matrix is None else matrix @ step_matrix
        return matrix, height, width

    def __repr__(self) -> str:
        lines = "".join(f"\n    {s!r}," for s in self.steps)
        return f"Compose([{lines}\n])"


def _pixel_centres(count: int, xp):
    return xp.arange(count, dtype=xp.float64) + 0.5


def _copy_pixels(batch, matrix, out_h, out_w):
    """Crops and flips: whole pixels; exact. With NumPy, one advanced index of a sliding-window
    view picks each image's window (a block copy: 0.12 ms for 32 crops of 224 from 256, against
    15 ms for a `take_along_axis` of every (row, column) pair), then the flipped ones are
    reversed; elsewhere (no sliding_window_view), a gather of rows then a flat `take` of columns."""
    xp = get_array_module(batch)
    n, channels, _, _ = batch.shape
    rows = xp.floor(matrix[:, 1, 1:2] * _pixel_centres(out_h, xp) + matrix[:, 1, 2:3]).astype(xp.intp)  # (N, H')
    cols = xp.floor(matrix[:, 0, 0:1] * _pixel_centres(out_w, xp) + matrix[:, 0, 2:3]).astype(xp.intp)  # (N, W')
    windows = getattr(getattr(getattr(xp, "lib", None), "stride_tricks", None), "sliding_window_view", None)
    if windows is None:
        picked = _gather_rows(batch, rows)  # (N, C, H', W)
        return _take_columns(picked, cols).reshape(n, channels, out_h, out_w)
    top, left = rows[:, 0], xp.minimum(cols[:, 0], cols[:, -1])
    out = windows(batch, (out_h, out_w), axis=(2, 3))[xp.arange(n), :, top, left]  # (N, C, H', W')
    flipped = cols[:, 0] > cols[:, -1]
    out[flipped] = out[flipped][..., ::-1]
    return out


def _gather_rows(batch, rows):
    """(N, C, R, W): row rows[n, r] of every channel of image n (copies of whole rows)."""
    xp = get_array_module(batch)
    n, channels = batch.shape[:2]
    return batch[xp.arange(n)[:, None, None], xp.arange(channels)[None, :, None], rows[:, None, :]]


def _take_columns(planes, cols, step=None):
    """(N, C*R, K): column cols[n, k] of every row of image n; with `step` (N, K) also the
    columns cols + step (the right-hand neighbours)."""
    xp = get_array_module(planes)
    n, channels, count, width = planes.shape
    flat = planes.reshape(-1)
    index = (xp.arange(n * channels * count) * width).reshape(n, channels * count, 1) + cols[:, None, :]
    first = xp.take(flat, index)
    return first if step is None else (first, xp.take(flat, index + step[:, None, :]))


def _finish(values, scale_offset, xp):
    """float32 0..255 values to the output: normalized, or rounded back to uint8."""
    if scale_offset is not None:
        values *= scale_offset[0]
        values += scale_offset[1]
        return values
    return xp.clip(xp.rint(values), 0, 255).astype(xp.uint8)


def _resample_separable(batch, matrix, out_h, out_w, scale_offset):
    """Crop/resize/flip maps (x_in from x_out, y_in from y_out): bilinear in two passes, columns
    (a flat `take` of the two neighbours, on uint8) then rows (gathers of whole rows), with
    coordinates clamped at the border (torchvision's resize; no black edge on a crop)."""
    xp = get_array_module(batch)
    n, channels, height, width = batch.shape
    x = matrix[:, 0, 0:1] * _pixel_centres(out_w, xp) + matrix[:, 0, 2:3] - 0.5  # (N, W') in index space
    y = matrix[:, 1, 1:2] * _pixel_centres(out_h, xp) + matrix[:, 1, 2:3] - 0.5  # (N, H')
    x0, fx = _taps(x, width, xp)
    y0, fy = _taps(y, height, xp)
    left, right = _take_columns(batch, x0, (x0 < width - 1).astype(xp.intp))  # (N, C*H, W') uint8
    columns = left.astype(xp.float32)
    columns += fx[:, None, :] * (right.astype(xp.float32) - columns)
    columns = columns.reshape(n, channels, height, out_w)
    top = _gather_rows(columns, y0)  # (N, C, H', W')
    bottom = _gather_rows(columns, xp.minimum(y0 + 1, height - 1))
    bottom -= top
    bottom *= fy[:, None, :, None]
    top += bottom
    return _finish(top, scale_offset, xp)


def _taps(coordinate, size, xp):
    """The first of two neighbouring pixels and the weight of the second, clamped to the image."""
    coordinate = xp.clip(coordinate, 0.0, size - 1.0)
    first = xp.floor(coordinate)
    return first.astype(xp.intp), (coordinate - first).astype(xp.float32)


def _warp(batch, matrix, out_h, out_w, fill, scale_offset):
    """A general affine map (rotation): each output pixel from its 4 neighbours in the input
    (flat `take`s); outside the image, `fill`."""
    xp = get_array_module(batch)
    n, channels, height, width = batch.shape
    padded = xp.full((n, channels, height + 2, width + 2), int(round(fill)), dtype=xp.uint8)
    padded[:, :, 1:-1, 1:-1] = batch
    gx = _pixel_centres(out_w, xp).astype(xp.float32)[None, None, :]
    gy = _pixel_centres(out_h, xp).astype(xp.float32)[None, :, None]
    m = matrix.astype(xp.float32)[:, :, :, None, None]  # (N, 3, 3, 1, 1)
    # +1 for the padding, -0.5 from pixel centres to indices; beyond the padding: the padding
    x = xp.clip(m[:, 0, 0] * gx + m[:, 0, 1] * gy + (m[:, 0, 2] + 0.5), 0.0, width + 0.999)  # (N, H', W')
    y = xp.clip(m[:, 1, 0] * gx + m[:, 1, 1] * gy + (m[:, 1, 2] + 0.5), 0.0, height + 0.999)
    x0, y0 = xp.floor(x), xp.floor(y)
    x -= x0
    y -= y0
    stride, plane = width + 2, (height + 2) * (width + 2)
    index = (y0.astype(xp.intp) * stride + x0.astype(xp.intp)).reshape(n, 1, -1)
    index = index + (xp.arange(n * channels) * plane).reshape(n, channels, 1)
    flat = padded.reshape(-1)

    def tap(offset):
        return xp.take(flat, index + offset).reshape(n, channels, out_h, out_w).astype(xp.float32)

    fx, fy = x[:, None], y[:, None]
    top = tap(0)
    top += fx * (tap(1) - top)
    bottom = tap(stride)
    bottom += fx * (tap(stride + 1) - bottom)
    top += fy * (bottom - top)
    return _finish(top, scale_offset, xp)


# ---------------------------------------------------------------------------- with a DataLoader
class KeyedDataset:
    """`(*dataset[i], key)`: each sample with its augmentation key, an int64 drawn from NumPy's
    global generator, which `kinone.data.DataLoader` seeds from (seed, epoch, i) before loading
    sample `i` (so the key depends on those alone: any worker count, batch, rank or resume)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        sample = self.dataset[index]
        key = np.int64(np.random.randint(0, 2**63 - 1, dtype=np.int64))
        return (*sample, key) if isinstance(sample, tuple) else (sample, key)

    def __getattr__(self, name):  # labels, pos_weight(), image_names, ... of the dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


class AugmentCollate:
    """A `collate_fn` that stacks `(image, label, key)` samples and augments the batch where
    it is collated (in the worker processes, in parallel): `(float32 images, labels)`.
    For the GPU, collate with `default_collate` instead and call the augmentation on the
    device batch: `augment(images_on_device, keys)`."""

    def __init__(self, augment: Compose):
        self.augment = augment

    def __call__(self, samples):
        from .collate import collate_arrays, to_tensors

        images, *rest, keys = collate_arrays(samples)
        return to_tensors((self.augment(images, keys), *rest))
