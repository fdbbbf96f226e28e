"""A preprocessed image cache: every image decoded and resized once, read memory-mapped.

    kinone-prepare --data-dir /data/nih --out /data/nih-256 --image-size 256 --workers 8
    train = NIHChestXray("/data/nih", "train", cache="/data/nih-256")   # uint8 (1, 256, 256) images

Decoding a 1024 x 1024 NIH PNG and resizing it costs ~10-30 ms of a core; reading the same
image from a cache is a memory copy of 64 KB (at 256). The format:

    CACHE/
        index.json              the index (written last, atomically: a cache holding it is complete)
        shards/00000.npy        uint8 (n, S, S): n images, row r is one image (np.save, no pickle)
        shards/00000.json       the shard's manifest: its images (name, source size, mtime) and
                                the images that could not be read; written after the .npy
        ...

index.json:

    {"format": "kinone-image-cache", "version": 1,
     "params": {"image_size": 256, "resample": "bilinear", "mode": "L", "dtype": "uint8"},
     "source_root": "/data/nih",
     "shards": [{"file": "shards/00000.npy", "count": 1024}, ...],
     "images": {"00000001_000.png": {"shard": 0, "row": 0, "size": 411227, "mtime_ns": ...}, ...},
     "corrupt": {"00000042_001.png": {"reason": "...", "size": 17, "mtime_ns": ...}, ...}}

Images: every image named by the metadata CSV whose file is found (the folders NIHChestXray
searches), converted to 8-bit gray as `nih.load_grayscale` does and resized to S x S with
Pillow (`resample`, antialiased when it shrinks: Pillow widens its filter by the scale), i.e.
exactly the pixels of `transforms.Resize((S, S))` applied to the PNG, so training from the
cache sees what training from the PNGs saw.

Shards are written atomically (temporary file, fsync, rename), each followed by its manifest:
a shard counts only once its manifest exists. An interrupted prepare keeps every finished
shard and prepares the rest; a shard whose images changed since (size or mtime) is prepared
again. A finished cache whose sources changed, or made with other parameters, is refused with
the reason (`CacheMismatch`); `update=True` (`kinone-prepare --update`) keeps the shards
still valid and prepares only the new and changed images. An image that cannot be decoded is
listed under "corrupt" with the reason and does not stop the others.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kinone.nn.serialization import atomic_write

from .transforms import _INTERPOLATIONS

FORMAT, VERSION = "kinone-image-cache", 1
INDEX = "index.json"
SHARDS = "shards"
RESAMPLE_FILTERS = _INTERPOLATIONS  # the names transforms.Resize takes
SHARD_BYTES = 64 * 2**20  # a shard holds about this much pixel data (1,024 images at 256)
SHOWN = 5  # names an error lists before "... (N more)"


class CacheError(ValueError):
    """A cache folder is unusable: no index, a damaged index or shard, another format."""


class CacheMismatch(CacheError):
    """A cache does not match its sources or the parameters asked for; the message says how."""


def cache_params(image_size: int, resample: str = "bilinear") -> dict:
    """The preprocessing parameters a cache records (and is compared on)."""
    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image cache: image_size must be a positive integer; got {image_size!r}")
    if resample not in RESAMPLE_FILTERS:
        raise ValueError(
            f"image cache: unknown resample filter {resample!r}; expected one of {sorted(RESAMPLE_FILTERS)}"
        )
    return {"image_size": image_size, "resample": resample, "mode": "L", "dtype": "uint8"}


def source_stat(path) -> tuple[int, int]:
    """`(size in bytes, mtime in ns)`: what identifies a source file's version."""
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns


def _few(names) -> str:
    names = list(names)
    shown = ", ".join(repr(n) for n in names[:SHOWN])
    return shown + (f", ... ({len(names) - SHOWN} more)" if len(names) > SHOWN else "")


# ---------------------------------------------------------------------------- reading
class ImageCache:
    """A finished cache, opened for reading: `cache.image(name)` is a read-only uint8 (S, S)
    view into a memory-mapped shard (no decode, no copy until used).

    Attributes: `root`, `params`, `image_size`, `images` (name -> entry with shard, row, size,
    mtime_ns), `corrupt` (name -> entry with the reason), `source_root`.
    """

    def __init__(self, root):
        self.root = Path(root)
        index_path = self.root / INDEX
        if not index_path.is_file():
            partial = (self.root / SHARDS).is_dir()
            raise CacheError(
                f"image cache {self.root}: no {INDEX}"
                + (
                    "; a prepare was interrupted: run kinone-prepare again to finish it"
                    if partial
                    else "; expected a folder written by kinone-prepare"
                )
            )
        index = _read_json(index_path, "image cache")
        if index.get("format") != FORMAT:
            raise CacheError(f"image cache {index_path}: format {index.get('format')!r}; expected {FORMAT!r}")
        if index.get("version") != VERSION:
            raise CacheError(
                f"image cache {index_path}: format version {index.get('version')!r}, this kinone-data reads "
                f"version {VERSION}: prepare the cache again with this version's kinone-prepare"
            )
        try:
            self.params = dict(index["params"])
            self.shards = [dict(s) for s in index["shards"]]
            self.images = dict(index["images"])
            self.corrupt = dict(index.get("corrupt", {}))
        except (KeyError, TypeError, ValueError) as error:
            raise CacheError(f"image cache {index_path}: damaged index ({type(error).__name__}: {error})") from None
        self.source_root = index.get("source_root")
        self.image_size = int(self.params["image_size"])
        self._arrays: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.images)

    def __getstate__(self):  # a DataLoader worker started by spawn/forkserver maps the shards itself
        return {**self.__dict__, "_arrays": {}}

    def __contains__(self, name) -> bool:
        return name in self.images

    def shard(self, number: int) -> np.ndarray:
        """Shard `number` as a read-only memory-mapped (n, S, S) uint8 array (opened once)."""
        array = self._arrays.get(number)
        if array is None:
            path = self.root / self.shards[number]["file"]
            try:
                array = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as error:
                raise CacheError(f"image cache: cannot read shard {path}: {error}") from None
            size = self.image_size
            expected = (self.shards[number]["count"], size, size)
            if array.dtype != np.uint8 or array.shape != expected:
                raise CacheError(
                    f"image cache: shard {path} holds {array.dtype} {array.shape}; expected uint8 {expected}"
                )
            self._arrays[number] = array
        return array

    def image(self, name: str) -> np.ndarray:
        """The cached (S, S) uint8 image `name` (a read-only view into its shard)."""
        entry = self.images.get(name)
        if entry is None:
            reason = self.corrupt.get(name, {}).get("reason")
            raise KeyError(
                f"image cache {self.root}: no image {name!r}"
                + (f" (its source is corrupt: {reason})" if reason else "")
            )
        return self.shard(entry["shard"])[entry["row"]]

    def check_sources(self, paths: dict) -> None:
        """`paths`: image name -> its source file now. Raise `CacheMismatch` if a source differs
        from the one cached (size or mtime), or is not in the cache (added since)."""
        changed, added = [], []
        for name, path in paths.items():
            entry = self.images.get(name) or self.corrupt.get(name)
            if entry is None:
                added.append(name)
                continue
            if source_stat(path) != (entry["size"], entry["mtime_ns"]):
                changed.append(name)
        reasons = []
        if changed:
            reasons.append(
                f"{len(changed)} source image(s) changed since it was prepared (size or mtime): {_few(changed)}"
            )
        if added:
            reasons.append(f"{len(added)} image(s) are not in it (added since?): {_few(added)}")
        if reasons:
            raise CacheMismatch(
                f"image cache {self.root} does not match its sources: {'; '.join(reasons)}; "
                f"run kinone-prepare --update --out {self.root} to bring it up to date"
            )

    def __repr__(self) -> str:
        return f"ImageCache({str(self.root)!r}, images={len(self)}, image_size={self.image_size}, corrupt={len(self.corrupt)})"


def _read_json(path: Path, what: str) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CacheError(f"{what}: cannot read {path}: {error}") from None
    if not isinstance(value, dict):
        raise CacheError(f"{what}: {path} is not a JSON object")
    return value


def _write_json(path: Path, value) -> None:
    text = json.dumps(value, separators=(",", ":"))
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


# ---------------------------------------------------------------------------- writing
@dataclass
class PrepareResult:
    """What `prepare_cache` did."""

    root: Path
    images: int  # images in the cache
    corrupt: dict  # name -> reason (sources that could not be decoded)
    missing: list  # names in the CSV whose file was not found (not cached)
    kept_shards: int  # shards reused from an earlier (interrupted or outdated) prepare
    written_shards: int
    complete: bool  # False when stopped by `stop_after_shards`
    seconds: float = 0.0
    dropped: list = field(default_factory=list)  # names cached before whose source is gone (--update)


def load_source(path, image_size: int, resample: str) -> np.ndarray:
    """Decode `path` to 8-bit gray as NIHChestXray does, resized to (image_size, image_size)."""
    from .datasets.nih import load_grayscale

    image = load_grayscale(os.fspath(path))
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), RESAMPLE_FILTERS[resample])
    return np.asarray(image, dtype=np.uint8)


def write_shard(root: Path, number: int, sources: list, params: dict, counter=None) -> dict:
    """Decode `sources` (name, path, size, mtime_ns) into shard `number`; write the shard, then
    its manifest. Runs in a pool worker. Returns the manifest."""
    size, resample = params["image_size"], params["resample"]
    pixels = np.empty((len(sources), size, size), dtype=np.uint8)
    images, corrupt = {}, {}
    for name, path, file_size, mtime_ns in sources:
        try:
            pixels[len(images)] = load_source(path, size, resample)
            images[name] = {"row": len(images), "size": file_size, "mtime_ns": mtime_ns}
        except (OSError, ValueError) as error:  # corrupt, truncated, not an image, vanished
            corrupt[name] = {"reason": " ".join(str(error).split()), "size": file_size, "mtime_ns": mtime_ns}
        if counter is not None:
            with counter.get_lock():
                counter.value += 1
    file = f"{SHARDS}/{number:05d}.npy"
    atomic_write(root / file, lambda f: np.save(f, pixels[: len(images)], allow_pickle=False))
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "params": params,
        "file": file,
        "count": len(images),
        "images": images,
        "corrupt": corrupt,
    }
    _write_json(root / SHARDS / f"{number:05d}.json", manifest)
    return manifest


_counter = None


def _init_worker(counter) -> None:
    global _counter
    _counter = counter


def _pool_task(root, number, sources, params):
    return write_shard(root, number, sources, params, _counter)


def list_sources(data_dir) -> tuple[dict, list]:
    """`({name: (path, size, mtime_ns)}, missing names)`: every image the metadata CSV names."""
    from .datasets.nih import find_data_entry, index_images, read_data_entry

    data_dir = Path(data_dir)
    names = read_data_entry(find_data_entry(data_dir))["names"].tolist()
    folders, folder_of = index_images(data_dir, names)
    sources, missing = {}, []
    for name, folder in zip(names, folder_of.tolist()):
        if folder < 0:
            missing.append(name)
            continue
        path = folders[folder] / name
        sources[name] = (path, *source_stat(path))
    return sources, missing


def read_manifests(root: Path, params: dict) -> dict:
    """The finished shards' manifests: {shard number: manifest}. A cache made with other
    parameters raises `CacheMismatch`."""
    manifests = {}
    folder = root / SHARDS
    if not folder.is_dir():
        return manifests
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):
            continue
        manifest = _read_json(path, "image cache")
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise CacheMismatch(
                f"image cache {root}: {path} is from format {manifest.get('format')!r} version "
                f"{manifest.get('version')!r}; expected {FORMAT!r} version {VERSION}"
            )
        if manifest.get("params") != params:
            differ = [
                f"{k} {manifest['params'].get(k)!r} (asked: {v!r})"
                for k, v in params.items()
                if manifest.get("params", {}).get(k) != v
            ]
            raise CacheMismatch(
                f"image cache {root} was prepared with other parameters: {', '.join(differ)}; "
                "choose another --out, or delete it to prepare it anew"
            )
        if (root / manifest["file"]).is_file():
            manifests[int(path.stem)] = manifest
    return manifests


def _stale(manifest: dict, sources: dict) -> list:
    """Names of a manifest's images (cached or corrupt) whose source changed or is gone."""
    stale = []
    for name, entry in (*manifest["images"].items(), *manifest["corrupt"].items()):
        source = sources.get(name)
        if source is None or tuple(source[1:]) != (entry["size"], entry["mtime_ns"]):
            stale.append(name)
    return stale


def prepare_cache(
    data_dir,
    out,
    image_size: int = 256,
    resample: str = "bilinear",
    workers: int = 0,
    update: bool = False,
    shard_size: int | None = None,
    progress: bool | None = None,
    stop_after_shards: int | None = None,
    report=None,
) -> PrepareResult:
    """Prepare (or finish, or update) the cache of `data_dir` in `out`; see the module docstring.

    `workers`: processes decoding in parallel (0: this process). `shard_size`: images per
    shard (default: about 64 MB of pixels, fewer so that every worker gets 4 shards).
    `progress`: a tqdm bar (None: on a terminal). `stop_after_shards`: stop after writing that
    many shards, as an interruption would (for tests). `report(line)`: where notes go.
    Raises `CacheMismatch` for a finished cache that differs from its sources (unless
    `update`) or a cache made with other parameters.
    """
    started = time.perf_counter()
    params = cache_params(image_size, resample)
    root = Path(out)
    report = report or (lambda line: None)
    sources, missing = list_sources(data_dir)
    manifests = read_manifests(root, params)
    kept, stale = {}, []
    for number, manifest in manifests.items():
        changed = _stale(manifest, sources)
        if changed:
            stale += changed
        else:
            kept[number] = manifest
    finished = (root / INDEX).is_file()
    done = {name for m in kept.values() for name in (*m["images"], *m["corrupt"])}
    todo = [name for name in sources if name not in done]
    if finished and (stale or todo) and not update:
        added = [name for name in todo if name not in stale]
        reasons = [f"{len(stale)} cached image(s) changed or were removed since: {_few(stale)}"] if stale else []
        reasons += [f"{len(added)} image(s) are new: {_few(added)}"] if added else []
        raise CacheMismatch(
            f"image cache {root} does not match {data_dir}: {'; '.join(reasons)}; "
            "pass --update to prepare only what changed, or choose another --out"
        )
    if manifests and not finished:
        report(f"resuming: {len(kept)} finished shard(s) kept ({len(done)} images), {len(todo)} images to go")
    if finished and (stale or todo):  # --update: the cache is incomplete until its new index is written
        (root / INDEX).unlink()
    for number in set(manifests) - set(kept):  # outdated shards: their images are in `todo` again
        _remove_shard(root, number)

    size = shard_size or _default_shard_size(len(todo), image_size, workers)
    first = max(manifests, default=-1) + 1
    plan = [
        (first + k, [(name, *sources[name]) for name in todo[i : i + size]])
        for k, i in enumerate(range(0, len(todo), size))
    ]
    complete = stop_after_shards is None or stop_after_shards >= len(plan)
    if not complete:
        plan = plan[:stop_after_shards]
    written = _run_plan(root, plan, params, workers, progress, sum(len(sources) for _, sources in plan))
    kept.update(written)
    if complete:
        _write_index(root, params, data_dir, kept)
    corrupt = {name: e["reason"] for m in kept.values() for name, e in m["corrupt"].items()}
    return PrepareResult(
        root=root,
        images=sum(m["count"] for m in kept.values()),
        corrupt=corrupt,
        missing=missing,
        kept_shards=len(kept) - len(written),
        written_shards=len(written),
        complete=complete,
        seconds=time.perf_counter() - started,
        dropped=[name for name in stale if name not in sources],
    )


def _default_shard_size(count: int, image_size: int, workers: int) -> int:
    by_bytes = max(1, SHARD_BYTES // (image_size * image_size))
    return max(1, min(by_bytes, math.ceil(count / (4 * max(1, workers)))))


def _remove_shard(root: Path, number: int) -> None:
    for suffix in (".json", ".npy"):  # the manifest first: a shard without one does not count
        try:
            (root / SHARDS / f"{number:05d}{suffix}").unlink()
        except FileNotFoundError:
            pass


def _run_plan(root: Path, plan: list, params: dict, workers: int, progress, total: int) -> dict:
    from tqdm import tqdm

    (root / SHARDS).mkdir(parents=True, exist_ok=True)
    bar = tqdm(
        total=total,
        desc="preparing images",
        unit="img",
        disable=None if progress is None else not progress,
        dynamic_ncols=True,
    )
    written = {}
    try:
        if workers <= 0:
            for number, sources in plan:
                written[number] = write_shard(root, number, sources, params)
                bar.update(len(sources))
            return written
        counter = multiprocessing.Value("q", 0)
        with multiprocessing.get_context("spawn" if os.name != "posix" else "fork").Pool(
            workers, initializer=_init_worker, initargs=(counter,)
        ) as pool:
            pending = {
                number: pool.apply_async(_pool_task, (root, number, sources, params)) for number, sources in plan
            }
            while pending:
                for number in [n for n, result in pending.items() if result.ready()]:
                    written[number] = pending.pop(number).get()  # re-raises a worker's error
                bar.update(counter.value - bar.n)
                if pending:
                    next(iter(pending.values())).wait(0.2)
        return written
    finally:
        bar.close()


def _write_index(root: Path, params: dict, data_dir, manifests: dict) -> None:
    numbers = sorted(manifests)
    shards, images, corrupt = [], {}, {}
    for position, number in enumerate(numbers):
        manifest = manifests[number]
        shards.append({"file": manifest["file"], "count": manifest["count"]})
        for name, entry in manifest["images"].items():
            images[name] = {"shard": position, **entry}
        corrupt.update(manifest["corrupt"])
    index = {
        "format": FORMAT,
        "version": VERSION,
        "params": params,
        "source_root": str(Path(data_dir).resolve()),
        "shards": shards,
        "images": dict(sorted(images.items())),
        "corrupt": dict(sorted(corrupt.items())),
    }
    _write_json(root / INDEX, index)
