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


CASES = [
    Case("nih_224_batch32_workers0", nih_224_batch32_workers0, unit="ms/batch", target=1.2),
    Case("nih_224_batch32_workers2", nih_224_batch32_workers2, unit="ms/batch", target=1.2),
]

if __name__ == "__main__":  # write the sample ahead of a run
    print(sample_root(), len(os.listdir(sample_root() / "images_001" / "images")), "images")
