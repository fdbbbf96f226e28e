"""check_images: every bad file named with its reason, from the header alone (no pixel decoded)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kinone.data.datasets.image_check import check_images
from kinone.data.datasets.nih import NIHChestXray, make_sample


def png_bytes(mode="L", size=(32, 32)) -> bytes:
    rng = np.random.default_rng(0)
    channels = {"L": (), "RGB": (3,), "RGBA": (4,)}
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65535, size[::-1], dtype=np.uint16))
    else:
        image = Image.fromarray(rng.integers(0, 255, size[::-1] + channels[mode], dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    assert image.mode == mode
    return buffer.getvalue()


def with_declared_size(png: bytes, width: int, height: int) -> bytes:
    """The same PNG with an IHDR (CRC recomputed) that declares another size."""
    chunk = b"IHDR" + struct.pack(">II", width, height) + png[24:29]
    return png[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + png[33:]


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    """Good images of every mode the NIH loader reads, and one bad file of each kind."""
    png = png_bytes()
    contents = {
        "gray.png": png,
        "rgb.png": png_bytes("RGB"),
        "rgba.png": png_bytes("RGBA"),
        "sixteen.png": png_bytes("I;16"),
        "empty.png": b"",
        "text.png": b"Data_Entry_2017.csv is not an image\n",
        "cut_header.png": png[:20],
        "cut_pixels.png": png[: len(png) // 2],
        "bomb.png": with_declared_size(png, 100_000, 100_000),
    }
    paths = {}
    for name, data in contents.items():
        paths[name] = tmp_path / name
        paths[name].write_bytes(data)
    paths["float.tif"] = tmp_path / "float.tif"
    Image.fromarray(np.zeros((8, 8), np.float32)).save(paths["float.tif"])
    paths["gone.png"] = tmp_path / "gone.png"
    paths["folder.png"] = tmp_path / "folder.png"
    paths["folder.png"].mkdir()
    return paths


def test_every_bad_file_is_named_with_its_reason_in_order(files):
    bad = check_images(list(files.values()), progress=False)
    assert [path.name for path, _ in bad] == [
        "empty.png", "text.png", "cut_header.png", "cut_pixels.png", "bomb.png", "float.tif", "gone.png", "folder.png",
    ]  # fmt: skip
    reasons = {path.name: reason for path, reason in bad}
    assert reasons["empty.png"] == "empty file (0 bytes)"
    assert reasons["text.png"].startswith("not an image")
    assert reasons["cut_header.png"].startswith("truncated or corrupt PNG header")
    assert reasons["cut_pixels.png"] == "truncated PNG: its end chunk (IEND) is missing"
    assert reasons["bomb.png"].startswith("decompression bomb: ") and "10000000000 pixels" in reasons["bomb.png"]
    assert reasons["float.tif"].startswith("unexpected mode 'F' (expected one of ") and "'I;16'" in reasons["float.tif"]
    assert reasons["gone.png"] == "missing"
    assert reasons["folder.png"] == "not a file"
    assert all(isinstance(path, Path) for path, _ in bad)


def test_an_unreadable_file_says_why(files, monkeypatch):
    import kinone.data.datasets.image_check as image_check

    def denied(path, mode="r"):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(image_check, "open", denied, raising=False)
    assert check_images([files["gray.png"]], progress=False) == [(files["gray.png"], "unreadable: Permission denied")]


def test_over_the_warning_limit_is_a_bomb_too_named_once(files, monkeypatch, recwarn):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 32 x 32 = 1024: Pillow would only warn
    bad = check_images([files["gray.png"], files["rgb.png"]], progress=False)
    assert bad == [
        (files["gray.png"], "decompression bomb: 32 x 32 = 1024 pixels, over PIL.Image.MAX_IMAGE_PIXELS (1000)"),
        (files["rgb.png"], "decompression bomb: 32 x 32 = 1024 pixels, over PIL.Image.MAX_IMAGE_PIXELS (1000)"),
    ]
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]  # said once, by name


def test_no_pixel_is_decoded(files, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise AssertionError("check_images decoded pixels")

    monkeypatch.setattr(Image.Image, "load", refuse)
    monkeypatch.setattr(Image.Image, "getdata", refuse)
    good = [files[name] for name in ("gray.png", "rgb.png", "rgba.png", "sixteen.png")]
    assert check_images(good, progress=False) == []


def test_progress_bar_on_a_terminal_only(files, monkeypatch, capsys):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    check_images([files["gray.png"], files["text.png"]], progress=True)
    assert "checking images" in terminal.getvalue() and "2/2" in terminal.getvalue()
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    check_images([files["gray.png"]], progress=False)
    assert terminal.getvalue() == ""
    pipe = io.StringIO()  # not a terminal: no bar even when asked
    monkeypatch.setattr("sys.stderr", pipe)
    check_images([files["gray.png"]], progress=True)
    assert pipe.getvalue() == ""
    assert capsys.readouterr().out == ""


def test_a_split_checked_before_reading_it(tmp_path):
    root = make_sample(tmp_path / "nih", n_patients=6, image_size=16, progress=False)
    splits = [NIHChestXray(root, split, val_fraction=0.2) for split in ("train", "val", "test")]
    paths = [path for split in splits for path in split.image_paths()]
    assert len(paths) == len(list((root / "images_001" / "images").iterdir()))
    assert check_images(paths, progress=False) == []
    broken = splits[1].image_path(0)
    broken.write_bytes(broken.read_bytes()[:30])
    reason = "truncated or corrupt PNG header (Pillow: cannot identify image file)"
    assert check_images(paths, progress=False) == [(broken, reason)]
