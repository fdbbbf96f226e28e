"""The synthetic NIH ChestX-ray14 sample: `make_sample` writes a small dataset in the real
layout (nih.py reads it), and the painter below draws its radiographs.

The painter: a "chest" (body, two dark lungs, heart, spine, faint ribs) with random position,
exposure, texture and noise, plus one pattern per finding at its own place (`_SIGNALS`), so a
model can learn every finding from the pixels. Each image is drawn from its own generator,
keyed by (seed, image number), so the images do not depend on how many processes write them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

from .nih import (
    CSV_NAMES,
    FINDINGS,
    NO_FINDING,
    TEST_LIST,
    TRAIN_VAL_LIST,
    V2020_HEADER,
)

__all__ = ["MIN_POSITIVES", "SAMPLE_PREVALENCE", "make_sample"]

# Per-image prevalence of each finding in the real data (v2020 counts / 112,120 images),
# floored at 3% so that every finding has positives in a sample of a few hundred images.
_REAL_COUNTS = (11559, 2776, 13317, 19894, 5782, 6331, 1431, 5302, 4667, 2303, 2516, 1686, 3385, 227)
SAMPLE_PREVALENCE = tuple(max(count / 112_120, 0.03) for count in _REAL_COUNTS)
MIN_POSITIVES = 3  # per finding, in train_val_list and in test_list of a sample

# The synthetic signal of each finding: a pattern at its own place on the chest.
# (pattern, centre x, centre y, radius x, radius y, gray levels added); coordinates are
# fractions of the image side, the patient's left lung is on the image's right.
_SIGNALS = {
    "Atelectasis": ("ellipse", 0.30, 0.68, 0.10, 0.025, 60),  # a plate-like band, left of the image
    "Cardiomegaly": ("heart", 0.56, 0.62, 0.17, 0.13, 0),  # the heart shadow grows by half
    "Effusion": ("ellipse", 0.70, 0.80, 0.12, 0.06, 60),  # fluid at the base of a lung
    "Infiltration": ("patches", 0.30, 0.32, 0.10, 0.10, 70),  # patchy opacities, upper zone
    "Mass": ("ellipse", 0.66, 0.38, 0.065, 0.065, 70),
    "Nodule": ("ellipse", 0.24, 0.48, 0.03, 0.03, 90),
    "Pneumonia": ("cloud", 0.70, 0.58, 0.07, 0.07, 70),
    "Pneumothorax": ("ellipse", 0.76, 0.24, 0.08, 0.07, -50),  # a dark, air-filled region
    "Consolidation": ("box", 0.38, 0.52, 0.06, 0.05, 55),
    "Edema": ("pair", 0.40, 0.42, 0.05, 0.09, 50),  # symmetric haze on both sides of the heart
    "Emphysema": ("lungs", 0.5, 0.45, 0.0, 0.0, -30),  # darker (hyperlucent) lungs
    "Fibrosis": ("grid", 0.66, 0.22, 0.09, 0.07, 60),  # reticular pattern, upper zone
    "Pleural_Thickening": ("ellipse", 0.175, 0.45, 0.02, 0.16, 65),  # along the chest wall
    "Hernia": ("ellipse", 0.50, 0.88, 0.06, 0.04, 70),  # below the heart
}
_LUNGS = ((0.32, 0.45, 0.13, 0.28), (0.68, 0.45, 0.13, 0.28))

_SAMPLE_README = """\
SYNTHETIC DATA - NOT MEDICAL IMAGES
===================================

This folder was written by kinone.data.datasets.nih.make_sample (kinone-data {version})
with n_patients={n_patients}, image_size={image_size}, draw_size={draw_size}, seed={seed}.
It imitates the file layout of the NIH ChestX-ray14 dataset (Wang et al., CVPR 2017) so that
code reading the real dataset can be run and tested without the 42 GB download. No image here
comes from a patient.

Files, as in the real dataset:
  Data_Entry_2017_v2020.csv   the real 11-field header; one row per image
  train_val_list.txt          {n_train_val} images of {n_train_val_patients} patients (no trailing newline)
  test_list.txt               {n_test} images of {n_test_patients} patients (no trailing newline)
  images_001/images/          {n_images} PNGs named <patient id, 8 digits>_<follow-up, 3 digits>.png,
                              8-bit grayscale, {image_size} x {image_size}; {n_rgba} are RGBA and {n_rgb} RGB,
                              as some real files are

How the images are made: a drawn "chest" (body, two dark lungs, heart, spine, faint ribs),
with random position, brightness, contrast, smooth texture and pixel noise per image. Each of
the 14 findings adds its own pattern at its own place (for example Nodule: a small bright
disk at the left of the image, mid-height; Pneumothorax: a dark region at the top right;
Cardiomegaly: a larger heart; Emphysema: darker lungs), with random amplitude and a small
random offset. "No Finding" images have none of them. So a model can learn every finding,
from the pixels alone.

Labels: each patient has a set of findings drawn with the real per-image prevalence (floored
at 3%), and each follow-up image keeps each of them with probability 0.75 and gains others
with a small probability; so some rows have several findings and about 45% have none.
Every finding has at least {min_positives} positive images in each of the two split lists.
Patients: the test patients ({test_fraction:.0%}) are disjoint from the train/val patients.
"""


def make_sample(
    root,
    n_patients: int = 300,
    image_size: int = 128,
    seed: int = 0,
    *,
    test_fraction: float = 0.2,
    overwrite: bool = False,
    progress: bool | None = None,
    workers: int = 0,
    draw_size: int | None = None,
) -> Path:
    """Write a small synthetic dataset in the exact NIH ChestX-ray14 layout; returns `root`.

    The defaults (300 patients, about 900 images of 128 x 128) take a few seconds to write.
    Images have a learnable signal per finding (see the README.txt written with them). The
    metadata CSV is written last, so a folder holding it is complete. `progress`: a tqdm bar
    (None: only on a terminal).

    A larger sample at the real size, for throughput tests (kinone-prepare, loaders): e.g.
    `make_sample(root, n_patients=1000, image_size=1024, workers=8, draw_size=256)` writes
    about 3,000 PNGs of 1024 x 1024 (~0.7 MB each, as heavy to decode as NIH's). `workers`:
    processes drawing and writing images (0: this process); the images are the same for any
    number (each is drawn from its own generator, keyed by (seed, image number)). `draw_size`:
    draw the chest at this size and upsample it (bicubic) to `image_size`, adding pixel noise
    at full size: ~4x faster at 1024 than drawing at full size (118 ms an image), with the same
    findings in the same places. Images of 512 pixels and more are written with PNG
    compression level 1 (2x faster to write than Pillow's default 6; decoding costs the same).
    """
    from tqdm import tqdm

    from ..__about__ import __version__

    if n_patients < 2:
        raise ValueError(f"make_sample: n_patients must be at least 2; got {n_patients}")
    if image_size < 16:
        raise ValueError(f"make_sample: image_size must be at least 16; got {image_size}")
    if draw_size is not None and not 16 <= draw_size:
        raise ValueError(f"make_sample: draw_size must be at least 16; got {draw_size}")
    if workers < 0:
        raise ValueError(f"make_sample: workers must be 0 or more; got {workers}")
    root = Path(root)
    if (root / CSV_NAMES[0]).exists() and not overwrite:
        raise FileExistsError(f"make_sample: {root / CSV_NAMES[0]} exists; pass overwrite=True to write it again")
    folder = root / "images_001" / "images"
    folder.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    prevalence = np.array(SAMPLE_PREVALENCE)
    test_patients = set((1 + rng.permutation(n_patients)[: max(1, round(test_fraction * n_patients))]).tolist())
    rows = []  # [name, findings (bool, 14), follow-up, patient id, age, sex, view]
    for patient in range(1, n_patients + 1):
        follow_ups = min(1 + int(rng.poisson(2.0)), 8)
        age, sex = int(rng.integers(18, 86)), "M" if rng.random() < 0.565 else "F"
        base = rng.random(len(FINDINGS)) < prevalence
        for k in range(follow_ups):
            present = (base & (rng.random(len(FINDINGS)) < 0.75)) | (rng.random(len(FINDINGS)) < 0.3 * prevalence)
            view = "PA" if rng.random() < 0.6 else "AP"
            rows.append([f"{patient:08d}_{k:03d}.png", present, k, patient, age + k // 2, sex, view])
    # Rare findings cluster by patient: make sure each has a few positives on both sides of
    # the official split, so that its test AUROC is defined.
    for side in (True, False):
        members = [r for r in rows if (r[3] in test_patients) == side]
        for f in range(len(FINDINGS)):
            lacking = [r for r in members if not r[1][f]]
            missing = MIN_POSITIVES - (len(members) - len(lacking))
            for i in rng.permutation(len(lacking))[: max(0, missing)]:
                lacking[i][1][f] = True

    n = len(rows)
    modes = np.array(["L"] * n, dtype=object)
    special = rng.permutation(n)[: 2 * max(2, round(0.02 * n))]  # ~2% RGBA and ~2% RGB
    modes[special[: len(special) // 2]], modes[special[len(special) // 2 :]] = "RGBA", "RGB"
    jobs = [
        (str(folder / name), np.flatnonzero(present), mode, image_size, draw_size, (seed, number))
        for number, ((name, present, *_), mode) in enumerate(zip(rows, modes))
    ]
    bar = tqdm(total=n, desc="writing sample images", unit="img", disable=None if progress is None else not progress)
    with bar:
        if workers == 0:
            for job in jobs:
                _write_sample_image(*job)
                bar.update()
        else:
            import multiprocessing

            with multiprocessing.get_context("spawn" if os.name != "posix" else "fork").Pool(workers) as pool:
                for _ in pool.imap_unordered(_write_sample_image_job, jobs, chunksize=4):
                    bar.update()

    test = [r[0] for r in rows if r[3] in test_patients]
    train_val = [r[0] for r in rows if r[3] not in test_patients]
    (root / TRAIN_VAL_LIST).write_text("\n".join(train_val), encoding="utf-8")  # no trailing newline, as NIH's
    (root / TEST_LIST).write_text("\n".join(test), encoding="utf-8")
    (root / "README.txt").write_text(
        _SAMPLE_README.format(
            version=__version__,
            n_patients=n_patients,
            image_size=image_size,
            draw_size=draw_size,
            seed=seed,
            n_images=n,
            n_train_val=len(train_val),
            n_train_val_patients=n_patients - len(test_patients),
            n_test=len(test),
            n_test_patients=len(test_patients),
            n_rgba=int((modes == "RGBA").sum()),
            n_rgb=int((modes == "RGB").sum()),
            test_fraction=test_fraction,
            min_positives=MIN_POSITIVES,
        ),
        encoding="utf-8",
    )
    lines = [V2020_HEADER]
    for name, present, follow_up, patient, age, sex, view in rows:
        labels = "|".join(sorted(FINDINGS[i] for i in np.flatnonzero(present))) or NO_FINDING
        spacing = 0.143 if view == "PA" else 0.168
        lines.append(
            f"{name},{labels},{follow_up},{patient},{age},{sex},{view},{image_size},{image_size},{spacing},{spacing}"
        )
    temporary = root / (CSV_NAMES[0] + ".tmp")
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(temporary, root / CSV_NAMES[0])  # last: a folder with the CSV is complete
    return root


def _write_sample_image(path: str, findings, mode: str, image_size: int, draw_size, key) -> None:
    """Draw one synthetic radiograph with `findings` (from a generator keyed by `key`) and save it."""
    rng = np.random.default_rng(key)
    size = image_size if draw_size is None else min(draw_size, image_size)
    pixels = _draw_chest(findings, (np.arange(size, dtype=np.float32) + 0.5) / size, rng)
    if size != image_size:
        upsampled = Image.fromarray(pixels).resize((image_size, image_size), Image.Resampling.BICUBIC)
        noisy = np.asarray(upsampled, dtype=np.float32) + rng.standard_normal((image_size, image_size), np.float32) * 4
        pixels = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    if mode == "L":
        image = Image.fromarray(pixels)
    else:
        channels = [pixels] * 3 + ([np.full_like(pixels, 255)] if mode == "RGBA" else [])
        image = Image.fromarray(np.stack(channels, axis=-1))
    image.save(path, compress_level=1 if image_size >= 512 else 6)


def _write_sample_image_job(job) -> None:
    _write_sample_image(*job)


def _window(size: int, cx, cy, rx, ry) -> tuple[slice, slice]:
    """The pixel rows and columns where a shape of radii (rx, ry) about (cx, cy) can be non-zero."""

    def span(c, r):
        return slice(max(0, int((c - 1.6 * r) * size)), min(size, math.ceil((c + 1.6 * r) * size) + 1))

    return span(cy, ry), span(cx, rx)


def _ellipse(xx, yy, cx, cy, rx, ry, softness=0.3):
    """1 inside the ellipse, 0 outside, with a soft edge `softness` of the radius wide."""
    r = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    return np.clip((1.0 - r) / softness, 0.0, 1.0)


def _smooth_noise(rng, cells: int, shape: tuple[int, int]) -> np.ndarray:
    """A smooth random field in [-1, 1]: `cells` x `cells` values upsampled bilinearly."""
    small = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(small, mode="F").resize(shape[::-1], Image.Resampling.BILINEAR))


def _draw_chest(findings, grid, rng) -> np.ndarray:
    """One synthetic radiograph (uint8, square) with the signals of `findings` (indices into FINDINGS).

    Shapes are computed only in the window they can cover (drawing is ~4x faster than on
    the whole image)."""
    size = len(grid)
    dx, dy = rng.uniform(-0.03, 0.03, 2)  # where the patient stands
    xs, ys = grid - np.float32(dx), grid - np.float32(dy)
    names = {FINDINGS[i] for i in findings}

    def blend(cx, cy, rx, ry, softness, level):  # paint an ellipse of gray `level` (array or number)
        rows, cols = _window(size, cx + dx, cy + dy, rx, ry)
        mask = _ellipse(xs[None, cols], ys[rows, None], cx, cy, rx, ry, softness)
        part = image[rows, cols]
        part += mask * ((level[rows, cols] if isinstance(level, np.ndarray) else level) - part)

    image = np.full((size, size), 30.0, dtype=np.float32)
    blend(0.5, 0.55, 0.44, 0.50, 0.1, 140.0)  # body
    ribs = (8 * np.sin(2 * np.pi * ys / 0.06, dtype=np.float32))[:, None] + np.zeros((1, size), np.float32)
    lung_level = 75.0 - (30.0 if "Emphysema" in names else 0.0) * rng.uniform(0.8, 1.2)
    for lung in _LUNGS:
        blend(*lung, 0.15, ribs + np.float32(lung_level))
    heart_scale = 1.5 if "Cardiomegaly" in names else 1.0
    blend(0.56, 0.62, 0.11 * heart_scale, 0.085 * heart_scale, 0.2, 165.0)
    rows, cols = _window(size, 0.5 + dx, 0.55 + dy, 0.03, 0.5)
    image[rows, cols] += _ellipse(xs[None, cols], ys[rows, None], 0.5, 0.55, 0.03, 0.5, 0.5) * 25  # spine
    image += _smooth_noise(rng, 6, image.shape) * 12

    for name in sorted(names):
        pattern, cx, cy, rx, ry, amplitude = _SIGNALS[name]
        if pattern in ("heart", "lungs"):
            continue  # drawn above
        cx, cy = cx + rng.uniform(-0.02, 0.02), cy + rng.uniform(-0.02, 0.02)
        amplitude *= rng.uniform(0.7, 1.1)
        centres = [(cx, cy), (1 - cx, cy)] if pattern == "pair" else [(cx, cy)]
        for x0, y0 in centres:
            rows, cols = _window(size, x0 + dx, y0 + dy, rx, ry)
            x, y = xs[None, cols], ys[rows, None]
            if pattern == "ellipse":
                signal = _ellipse(x, y, x0, y0, rx, ry)
            elif pattern in ("cloud", "pair"):
                signal = np.exp(-(((x - x0) / rx) ** 2 + ((y - y0) / ry) ** 2))
            elif pattern == "box":
                signal = ((np.abs(x - x0) < rx) & (np.abs(y - y0) < ry)).astype(np.float32)
            elif pattern == "patches":
                patches = _smooth_noise(rng, 4, (rows.stop - rows.start, cols.stop - cols.start)) > 0.1
                signal = _ellipse(x, y, x0, y0, rx, ry) * patches
            elif pattern == "grid":
                period = 0.035
                lattice = np.maximum(np.cos(2 * np.pi * x / period), np.cos(2 * np.pi * y / period)) > 0.6
                signal = _ellipse(x, y, x0, y0, rx, ry) * lattice
            else:
                raise AssertionError(pattern)
            image[rows, cols] += amplitude * signal

    image = (image - 100) * np.float32(rng.uniform(0.9, 1.1)) + np.float32(100 + rng.uniform(-10, 10))  # exposure
    image += rng.standard_normal(image.shape, dtype=np.float32) * 5
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
