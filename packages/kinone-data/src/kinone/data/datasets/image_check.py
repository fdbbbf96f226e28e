"""Check the image files a run will read, before its first step: header only, no pixel decoded.

`check_images(paths)` opens each file with Pillow, which reads the header (format, size,
mode) and stops; for a PNG it also reads the file's last bytes, where every whole PNG ends
with its IEND chunk, so a download cut in the pixel data is caught without decoding it. It
returns every bad file with the reason, in the order given:

    missing, not a file, empty file (0 bytes), not an image, truncated or corrupt PNG header,
    truncated PNG (no IEND), decompression bomb (more pixels than PIL.Image.MAX_IMAGE_PIXELS),
    unexpected mode (one the NIH loader does not turn into 8-bit gray), unreadable (an OSError)

Usage, as kinone-train does it:

    paths = [path for split in datasets for path in split.image_paths()]
    for path, reason in check_images(paths, progress=True):
        print(f"{path}: {reason}", file=sys.stderr)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path

from PIL import Image, UnidentifiedImageError

# The modes nih.to_grayscale turns into 8-bit gray: gray, 16/32-bit integer gray, palette,
# RGB(A) (some NIH files carry extra channels) and bilevel. Float ('F'), CMYK, YCbCr, LAB,
# HSV would convert without error and without meaning.
GRAYSCALE_MODES = ("L", "LA", "I", "I;16", "I;16B", "I;16L", "P", "PA", "RGB", "RGBA", "1")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk's type and CRC: the last 8 bytes of a whole PNG
PNG_TAIL = 4096  # where IEND is looked for, from the end (tolerates bytes written after it)


def check_images(
    paths: Iterable[str | os.PathLike], progress: bool = True, modes: tuple[str, ...] = GRAYSCALE_MODES
) -> list[tuple[Path, str]]:
    """`(path, reason)` for every file that cannot be read as an image of one of `modes`.

    Reads headers only (Pillow's `Image.open` parses the header and decodes nothing; a PNG's
    last bytes are read too). `progress`: a tqdm bar on stderr, shown only when stderr is a
    terminal. Pillow's own DecompressionBombWarning (which names no file) is not repeated:
    the file is in the list.
    """
    from tqdm import tqdm

    paths = [Path(path) for path in paths]
    bad = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        bar = tqdm(paths, desc="checking images", unit="img", disable=None if progress else True, dynamic_ncols=True)
        for path in bar:
            reason = check_image(path, modes)
            if reason is not None:
                bad.append((path, reason))
                bar.set_postfix(bad=len(bad), refresh=False)
    return bad


def check_image(path: str | os.PathLike, modes: tuple[str, ...] = GRAYSCALE_MODES) -> str | None:
    """Why `path` cannot be read as an image of one of `modes` (None: its header is sound)."""
    try:
        with open(path, "rb") as file:
            return _check_open_file(file, modes)
    except FileNotFoundError:
        return "missing"
    except IsADirectoryError:
        return "not a file"
    except OSError as error:  # permission denied, an I/O error of the disk
        return f"unreadable: {error.strerror or error}"


def _check_open_file(file, modes) -> str | None:
    try:
        with Image.open(file) as image:
            width, height = image.size
            image_format, mode = image.format, image.mode
    except Image.DecompressionBombError as error:
        return f"decompression bomb: {error}"
    except Exception as error:  # UnidentifiedImageError, or what a plugin raises on a bad header
        return _unidentified(file, error)
    if width * height > (Image.MAX_IMAGE_PIXELS or float("inf")):
        return (
            f"decompression bomb: {width} x {height} = {width * height} pixels, "
            f"over PIL.Image.MAX_IMAGE_PIXELS ({Image.MAX_IMAGE_PIXELS})"
        )
    if mode not in modes:
        return f"unexpected mode {mode!r} (expected one of {', '.join(repr(m) for m in modes)})"
    if image_format == "PNG" and not _ends_like_a_png(file):
        return "truncated PNG: its end chunk (IEND) is missing"
    return None


def _unidentified(file, error: Exception) -> str:
    """Tell an empty file, a damaged PNG header and a file that is no image at all apart."""
    file.seek(0)
    start = file.read(len(PNG_SIGNATURE))
    if isinstance(error, UnidentifiedImageError):
        pillow = "cannot identify image file"  # its message names a file object, not the path
    else:
        pillow = f"{type(error).__name__}: {error}"
    if not start:
        return "empty file (0 bytes)"
    if start == PNG_SIGNATURE:
        return f"truncated or corrupt PNG header (Pillow: {pillow})"
    return f"not an image (Pillow: {pillow})"


def _ends_like_a_png(file) -> bool:
    size = file.seek(0, os.SEEK_END)
    file.seek(max(0, size - PNG_TAIL))
    return PNG_END in file.read()
