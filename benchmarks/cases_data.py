"""Group `data`: DataLoader throughput on the synthetic NIH ChestX-ray14 sample at 224 x 224.

One step is one batch of 32 images: PNG decode (256 x 256, 8-bit grayscale), then
`RandomResizedCrop(224, scale=(0.5, 1))`, `RandomHorizontalFlip()`, `ToArray()`,
`Normalize([0.5], [0.25])`, then batching, with the loader shuffling. Both frameworks load the
same `kinone.data.datasets.NIHChestXray` with the same transforms (PIL does the pixel work);
only the loader differs: `kinone.data.DataLoader` against `torch.utils.data.DataLoader`, with
0 and with 2 worker processes (both with their default start method, fork on Linux). The
iterator runs across epochs (about 44 batches each), so each epoch's worker start is counted.
Images per second = 32,000 / (ms per batch).

The torch side runs with 1 intra-op thread here (its workers do anyway): the loader's only
torch op is the collate's `torch.stack`, which with 2 threads on the 2-core development VM took
anywhere from 2 to 250 ms for a 6.4 MB batch (OpenMP thread wake-ups; 0.35 ms with 1 thread),
and the comparison is of loaders, not of torch's thread pool.

The sample is written once into the temp folder (`kinone-bench-nih-sample-600x256`; about
10 s) and reused by later runs.

Cases `nih1024_*` (issue 15): images/s into a training loop at 224 from the real 1024 x 1024
size, on a synthetic sample of ~300 PNGs (`make_sample(..., image_size=1024, draw_size=256)`,
~0.7 MB each; written once, about 30 s, into `kinone-bench-nih-sample-100x1024`):

- `nih1024_png_224_batch32_workers2`: decode the PNG, `RandomResizedCrop(224, scale=(0.7, 1))`,
  `ToArray`, `Normalize`, 2 workers; kinone's DataLoader against torch's on the same dataset
  and transforms (PIL; torchvision is not needed: its PIL transforms compute the same).
- `nih1024_cache_rrc224_batch32_workers2`: the same images from a kinone-prepare cache at 256
  (`kinone.data.cache`, prepared once), the batch augmented by
  `batch_transforms.Compose([RandomResizedCrop(224, scale=(0.7, 1)), Normalize])` in the 2
  workers (`KeyedDataset` + `AugmentCollate`). The torch column: torch's DataLoader over the
  same cached dataset, the same NumPy batch augmentation in its collate_fn.
- `nih1024_cache_crop224_batch32_workers0`: from the cache, `RandomCrop(224)` (a copy, no
  resampling) and `Normalize`, in the main process; torch column as above.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from case import Case  # benchmarks/case.py: run.py puts its own folder on sys.path

BATCH = 32
SAMPLE_PATIENTS, SAMPLE_IMAGE_SIZE = 600, 256  # about 1,800 images, 1,400 of them in "train"


def sample_root() -> Path:
    """The benchmark's sample dataset, written on first use (the CSV is written last, so a
    folder holding it is complete)."""
    from kinone.data.datasets import make_sample

    root = Path(tempfile.gettempdir()) / f"kinone-bench-nih-sample-{SAMPLE_PATIENTS}x{SAMPLE_IMAGE_SIZE}"
    if not (root / "Data_Entry_2017_v2020.csv").exists():
        make_sample(
            root, n_patients=SAMPLE_PATIENTS, image_size=SAMPLE_IMAGE_SIZE, seed=0, overwrite=True, progress=False
        )
    return root


def batches(fw, num_workers: int):
    """A step function pulling the next batch of the loader of `fw`, across epochs."""
    from kinone.data import transforms as T
    from kinone.data.datasets import NIHChestXray

    transform = T.Compose(
        [T.RandomResizedCrop(224, scale=(0.5, 1.0)), T.RandomHorizontalFlip(), T.ToArray(), T.Normalize([0.5], [0.25])]
    )
    dataset = NIHChestXray(sample_root(), "train", transform=transform)
    if fw.__name__ == "torch":
        from torch.utils.data import DataLoader

        fw.set_num_threads(1)  # see the module docstring
        loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=num_workers, drop_last=True)
    else:
        from kinone.data import DataLoader

        loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=num_workers, drop_last=True, seed=0)
    state = {"iterator": iter(loader)}

    def step():
        try:
            images, labels = next(state["iterator"])
        except StopIteration:
            state["iterator"] = iter(loader)
            images, labels = next(state["iterator"])
        assert tuple(images.shape) == (BATCH, 1, 224, 224) and tuple(labels.shape) == (BATCH, 14)
        return float(images.shape[0])  # the same "loss" on both sides

    return step


def nih_224_batch32_workers0(fw):
    """NIH sample, 224 x 224, batch 32: decode + crop/resize + flip + normalize + batch, in the main process."""
    return batches(fw, 0)


def nih_224_batch32_workers2(fw):
    """NIH sample, 224 x 224, batch 32: decode + crop/resize + flip + normalize + batch, 2 worker processes."""
    return batches(fw, 2)


LARGE_PATIENTS, LARGE_IMAGE_SIZE, CACHE_SIZE = 100, 1024, 256


def large_sample_root() -> Path:
    """~300 synthetic PNGs of 1024 x 1024, written on first use."""
    from kinone.data.datasets import make_sample

    root = Path(tempfile.gettempdir()) / f"kinone-bench-nih-sample-{LARGE_PATIENTS}x{LARGE_IMAGE_SIZE}"
    if not (root / "Data_Entry_2017_v2020.csv").exists():
        make_sample(
            root,
            n_patients=LARGE_PATIENTS,
            image_size=LARGE_IMAGE_SIZE,
            seed=0,
            overwrite=True,
            progress=False,
            workers=2,
            draw_size=256,
        )
    return root


def large_cache_root() -> Path:
    """The kinone-prepare cache of the large sample at 256, prepared on first use."""
    from kinone.data.cache import prepare_cache

    out = Path(tempfile.gettempdir()) / f"kinone-bench-nih-cache-{LARGE_PATIENTS}x{LARGE_IMAGE_SIZE}-{CACHE_SIZE}"
    if not (out / "index.json").exists():
        prepare_cache(large_sample_root(), out, image_size=CACHE_SIZE, workers=2, progress=False)
    return out


def endless(loader, check):
    """A step function pulling the next batch of `loader`, across epochs."""
    state = {"iterator": iter(loader)}

    def step():
        try:
            images, labels = next(state["iterator"])
        except StopIteration:
            state["iterator"] = iter(loader)
            images, labels = next(state["iterator"])
        check(images, labels)
        return float(images.shape[0])

    return step


def _check_224(images, labels):
    assert tuple(images.shape) == (BATCH, 1, 224, 224) and tuple(labels.shape) == (BATCH, 14)


def nih1024_png_224_batch32_workers2(fw):
    """1024 x 1024 PNGs, 224, batch 32: decode + random resized crop + normalize + batch, 2 workers."""
    from kinone.data import transforms as T
    from kinone.data.datasets import NIHChestXray

    transform = T.Compose([T.RandomResizedCrop(224, scale=(0.7, 1.0)), T.ToArray(), T.Normalize([0.5], [0.25])])
    dataset = NIHChestXray(large_sample_root(), "train", transform=transform)
    if fw.__name__ == "torch":
        from torch.utils.data import DataLoader

        fw.set_num_threads(1)
        loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=2, drop_last=True)
    else:
        from kinone.data import DataLoader

        loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=2, drop_last=True, seed=0)
    return endless(loader, _check_224)


def _cached_loader(fw, augment, num_workers: int):
    from kinone.data import batch_transforms as B
    from kinone.data.datasets import NIHChestXray

    cache = large_cache_root()
    dataset = B.KeyedDataset(NIHChestXray(large_sample_root(), "train", cache=cache))
    if fw.__name__ == "torch":
        import numpy as np
        from torch.utils.data import DataLoader

        fw.set_num_threads(1)

        def collate(samples):  # the same NumPy batch augmentation, torch tensors out
            images = np.stack([s[0] for s in samples])
            keys = np.array([s[2] for s in samples])
            labels = np.stack([s[1] for s in samples])
            return fw.from_numpy(augment(images, keys)), fw.from_numpy(labels)

        return DataLoader(
            dataset, batch_size=BATCH, shuffle=True, num_workers=num_workers, drop_last=True, collate_fn=collate
        )
    from kinone.data import DataLoader

    return DataLoader(
        dataset,
        batch_size=BATCH,
        shuffle=True,
        num_workers=num_workers,
        drop_last=True,
        seed=0,
        collate_fn=B.AugmentCollate(augment),
    )


def nih1024_cache_rrc224_batch32_workers2(fw):
    """From a 256 cache of the 1024 PNGs, 224, batch 32: random resized crop + normalize on the batch, 2 workers."""
    from kinone.data import batch_transforms as B

    augment = B.Compose([B.RandomResizedCrop(224, scale=(0.7, 1.0)), B.Normalize([0.5], [0.25])])
    return endless(_cached_loader(fw, augment, 2), _check_224)


def nih1024_cache_crop224_batch32_workers0(fw):
    """From a 256 cache of the 1024 PNGs, 224, batch 32: random crop (a copy) + normalize on the batch, no workers."""
    from kinone.data import batch_transforms as B

    augment = B.Compose([B.RandomCrop(224), B.Normalize([0.5], [0.25])])
    return endless(_cached_loader(fw, augment, 0), _check_224)


CASES = [
    Case("nih_224_batch32_workers0", nih_224_batch32_workers0, unit="ms/batch", target=1.2),
    Case("nih_224_batch32_workers2", nih_224_batch32_workers2, unit="ms/batch", target=1.2),
    Case("nih1024_png_224_batch32_workers2", nih1024_png_224_batch32_workers2, unit="ms/batch", target=1.0),
    Case("nih1024_cache_rrc224_batch32_workers2", nih1024_cache_rrc224_batch32_workers2, unit="ms/batch"),
    Case("nih1024_cache_crop224_batch32_workers0", nih1024_cache_crop224_batch32_workers0, unit="ms/batch"),
]

if __name__ == "__main__":  # write the samples (and the cache) ahead of a run
    print(sample_root(), len(os.listdir(sample_root() / "images_001" / "images")), "images")
    print(large_cache_root(), len(os.listdir(large_sample_root() / "images_001" / "images")), "images")
