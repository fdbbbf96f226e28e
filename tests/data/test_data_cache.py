"""The preprocessed image cache (kinone.data.cache, kinone-prepare) and NIHChestXray(cache=...)."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from kinone.data import DataLoader
from kinone.data import transforms as T
from kinone.data.cache import CacheError, CacheMismatch, ImageCache, prepare_cache
from kinone.data.datasets import NIHChestXray, make_sample
from kinone.data.datasets.nih import load_grayscale
from kinone.data.prepare_cli import main

SIZE = 24


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A sample of ~35 images of 40 x 40 (RGB and RGBA among them)."""
    return make_sample(tmp_path_factory.mktemp("cache") / "nih", n_patients=12, image_size=40, seed=5, progress=False)


@pytest.fixture
def data(source, tmp_path):
    """A private copy of the sample (tests change its files)."""
    return shutil.copytree(source, tmp_path / "nih")


def images_of(root):
    folder = root / "images_001" / "images"
    return {path.name: path for path in sorted(folder.iterdir())}


def expected_pixels(path, size=SIZE):
    return np.asarray(T.Resize((size, size))(load_grayscale(str(path))))


def prepare(data, out, **kwargs):
    kwargs = {"image_size": SIZE, "workers": 0, "shard_size": 8, "progress": False, **kwargs}
    return prepare_cache(data, out, **kwargs)


def test_round_trip_holds_the_pixels_of_resize_on_the_png_in_plain_npy_shards(source, tmp_path):
    result = prepare(source, tmp_path / "cache")
    sources = images_of(source)
    assert result.complete and result.images == len(sources) and not result.corrupt and result.written_shards == 5
    cache = ImageCache(tmp_path / "cache")
    assert len(cache) == len(sources) and cache.image_size == SIZE
    for name, path in sources.items():
        image = cache.image(name)
        assert image.dtype == np.uint8 and image.shape == (SIZE, SIZE) and not image.flags.writeable
        assert np.array_equal(image, expected_pixels(path)), name
    index = json.loads((tmp_path / "cache" / "index.json").read_text())
    assert index["format"] == "kinone-image-cache" and index["version"] == 1
    assert index["params"] == {"image_size": SIZE, "resample": "bilinear", "mode": "L", "dtype": "uint8"}
    some = next(iter(sources))
    entry = index["images"][some]
    stat = os.stat(sources[some])
    assert (entry["size"], entry["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns)
    shard = np.load(tmp_path / "cache" / index["shards"][entry["shard"]]["file"], allow_pickle=False)
    assert np.array_equal(shard[entry["row"]], expected_pixels(sources[some]))


def test_a_pool_of_workers_writes_the_same_images(source, tmp_path):
    prepare(source, tmp_path / "zero")
    prepare(source, tmp_path / "two", workers=2)
    zero, two = ImageCache(tmp_path / "zero"), ImageCache(tmp_path / "two")
    assert set(zero.images) == set(two.images)
    assert all(np.array_equal(zero.image(n), two.image(n)) for n in zero.images)


def test_an_interrupted_prepare_keeps_its_shards_and_finishes_the_rest(source, tmp_path):
    out = tmp_path / "cache"
    first = prepare(source, out, stop_after_shards=2)
    assert not first.complete and first.written_shards == 2 and not (out / "index.json").exists()
    with pytest.raises(CacheError, match="interrupted: run kinone-prepare again"):
        ImageCache(out)
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()}
    second = prepare(source, out)
    assert second.complete and second.kept_shards == 2 and second.written_shards == 3
    assert {p: (out / "shards" / p).stat().st_mtime_ns for p in stamps} == stamps  # not rewritten
    cache = ImageCache(out)
    assert all(np.array_equal(cache.image(n), expected_pixels(p)) for n, p in images_of(source).items())


def test_a_half_written_shard_without_its_manifest_is_prepared_again(source, tmp_path):
    out = tmp_path / "cache"
    prepare(source, out, stop_after_shards=2)
    (out / "shards" / "00001.json").unlink()  # killed between the shard and its manifest
    again = prepare(source, out)
    assert again.kept_shards == 1 and again.complete
    assert len(ImageCache(out)) == len(images_of(source))


def test_a_corrupt_source_is_named_listed_and_the_rest_prepared(data, tmp_path, capsys):
    name, path = next(iter(images_of(data).items()))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)
    assert (
        main(
            [
                "--data-dir",
                str(data),
                "--out",
                str(tmp_path / "cache"),
                "--image-size",
                str(SIZE),
                "--workers",
                "0",
                "--no-progress",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert f"corrupt image {name}" in err and str(path) in err
    cache = ImageCache(tmp_path / "cache")
    assert name in cache.corrupt and name not in cache and len(cache) == len(images_of(data)) - 1
    split = next(s for s in ("train", "val", "test") if name in NIHChestXray(data, s, val_fraction=0.3).image_names)
    with pytest.raises(CacheMismatch, match=f"could not be decoded.*{name}.*--skip-missing"):
        NIHChestXray(data, split, val_fraction=0.3, cache=tmp_path / "cache")
    with pytest.warns(UserWarning, match="skipped 1"):
        skipping = NIHChestXray(data, split, val_fraction=0.3, cache=tmp_path / "cache", skip_missing=True)
    assert name not in skipping.image_names
    # unchanged, the corrupt file is not retried and the cache stays valid
    assert prepare(data, tmp_path / "cache").written_shards == 0


def test_other_parameters_are_refused_with_the_reason(source, tmp_path):
    prepare(source, tmp_path / "cache")
    with pytest.raises(CacheMismatch, match=r"other parameters: image_size 24 \(asked: 32\)"):
        prepare(source, tmp_path / "cache", image_size=32)
    with pytest.raises(CacheMismatch, match=r"resample 'bilinear' \(asked: 'lanczos'\)"):
        prepare(source, tmp_path / "cache", resample="lanczos", update=True)


def test_a_changed_source_is_refused_by_the_dataset_and_by_prepare_and_update_redoes_only_it(data, tmp_path):
    out = tmp_path / "cache"
    prepare(data, out)
    name, path = list(images_of(data).items())[9]
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 10**9))
    split = next(s for s in ("train", "val", "test") if name in NIHChestXray(data, s).image_names)
    with pytest.raises(CacheMismatch, match=f"1 source image.*changed.*{name}.*--update"):
        NIHChestXray(data, split, cache=out)
    with pytest.raises(CacheMismatch, match=f"changed or were removed since: '{name}'.*--update"):
        prepare(data, out)
    updated = prepare(data, out, update=True)
    assert updated.written_shards == 1 and updated.kept_shards == 4 and updated.complete
    assert NIHChestXray(data, split, cache=out).image_names  # accepted again


def test_added_and_removed_images(data, tmp_path):
    out = tmp_path / "cache"
    prepare(data, out)
    names = list(images_of(data))
    removed = images_of(data)[names[3]]
    removed.unlink()
    with pytest.raises(CacheMismatch, match=f"changed or were removed since: '{names[3]}'"):
        prepare(data, out)
    updated = prepare(data, out, update=True)
    assert updated.dropped == [names[3]] and names[3] not in ImageCache(out)
    # a cache lacking an image whose PNG is there (added after prepare) is refused by the dataset
    index = json.loads((out / "index.json").read_text())
    gone = names[5]
    del index["images"][gone]
    (out / "index.json").write_text(json.dumps(index))
    with pytest.warns(UserWarning, match="skipped 1"):  # the removed PNG
        splits = {s: NIHChestXray(data, s, skip_missing=True).image_names for s in ("train", "val", "test")}
    split = next(s for s, names in splits.items() if gone in names)
    with pytest.raises(CacheMismatch, match=f"1 image.*not in it.*{gone}"):
        NIHChestXray(data, split, cache=out, skip_missing=True)


def test_the_dataset_from_the_cache_has_the_same_splits_labels_and_pixels(source, tmp_path):
    prepare(source, tmp_path / "cache")
    for split in ("train", "val", "test"):
        plain = NIHChestXray(source, split, val_fraction=0.25, seed=1)
        cached = NIHChestXray(source, split, val_fraction=0.25, seed=1, cache=tmp_path / "cache")
        assert cached.image_names == plain.image_names and np.array_equal(cached.labels, plain.labels)
        assert np.array_equal(cached.patient_ids, plain.patient_ids)
        image, label = cached[0]
        assert image.shape == (1, SIZE, SIZE) and image.dtype == np.uint8 and image.flags.writeable
        assert np.array_equal(image[0], expected_pixels(plain.image_path(0))) and np.array_equal(label, plain[0][1])
    with_transform = NIHChestXray(source, "train", cache=tmp_path / "cache", transform=T.Compose([T.ToArray()]))
    assert with_transform[0][0].shape == (1, SIZE, SIZE) and with_transform[0][0].dtype == np.float32
    images, labels = next(iter(DataLoader(cached, batch_size=4, num_workers=0, seed=0)))
    assert images.shape == (4, 1, SIZE, SIZE) and str(images.dtype) == "uint8" and labels.shape == (4, 14)


def test_the_cache_outlives_the_pngs(source, tmp_path):
    data = shutil.copytree(source, tmp_path / "nih")
    prepare(data, tmp_path / "cache")
    shutil.rmtree(data / "images_001")
    cached = NIHChestXray(data, "test", cache=tmp_path / "cache")
    assert len(cached) == len(NIHChestXray(source, "test"))


def test_cli_errors_are_one_line_with_exit_codes(source, tmp_path, capsys):
    out = str(tmp_path / "cache")
    assert main(["--data-dir", str(source), "--out", out, "--image-size", "4"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert main(["--data-dir", str(tmp_path / "nowhere"), "--out", out]) == 2
    assert main(["--data-dir", str(source), "--out", out, "--image-size", "16", "--workers", "0"]) == 0
    assert "images of 16 x 16" in capsys.readouterr().out
    assert main(["--data-dir", str(source), "--out", out, "--image-size", "20", "--workers", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kinone-prepare: image cache") and "image_size 16 (asked: 20)" in err and err.count("\n") == 1
    with pytest.raises(CacheMismatch):
        main(["--data-dir", str(source), "--out", out, "--image-size", "20", "--workers", "0", "--debug"])


def test_a_damaged_shard_or_index_is_named(source, tmp_path):
    out = tmp_path / "cache"
    prepare(source, out)
    (out / "shards" / "00000.npy").write_bytes(b"not an array")
    with pytest.raises(CacheError, match="cannot read shard .*00000.npy"):
        ImageCache(out).shard(0)
    (out / "index.json").write_text("{")
    with pytest.raises(CacheError, match="cannot read .*index.json"):
        ImageCache(out)


def test_make_sample_draws_the_same_images_with_workers_and_upsamples_with_draw_size(tmp_path):
    zero = make_sample(tmp_path / "zero", n_patients=4, image_size=64, draw_size=32, seed=2, progress=False)
    two = make_sample(tmp_path / "two", n_patients=4, image_size=64, draw_size=32, seed=2, progress=False, workers=2)
    names = sorted(images_of(zero))
    assert names == sorted(images_of(two))
    assert all((images_of(zero)[n]).read_bytes() == (images_of(two)[n]).read_bytes() for n in names)
    assert load_grayscale(str(images_of(zero)[names[0]])).size == (64, 64)
    assert "SYNTHETIC" in (zero / "README.txt").read_text() and "draw_size=32" in (zero / "README.txt").read_text()
