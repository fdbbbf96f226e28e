"""`kinone-train`: train a model on NIH ChestX-ray14 from the command line.

    kinone-train --data-dir /data/nih --model resnet18 --image-size 224 --epochs 5 \\
                 --batch-size 32 --lr 1e-3 --optimizer adamw --num-workers 2 --run-dir runs/r18
    kinone-train --run-dir runs/r18 --resume     # continue that run where it stopped
    kinone-train --sample        # a synthetic sample in the real layout, a small model, a few minutes
    mpiexec -n 2 kinone-train --sample --batch-size 16   # data parallel: 2 processes, 16 images each per step

Multi-label training with BCE-with-logits (pos_weight from the training split), validation
per epoch (per-finding AUROC), checkpoints in the run directory, and at the end a per-finding
AUROC table on the test split, computed with the best checkpoint.

A run directory is never overwritten: training into one that holds a run is refused unless
`--resume` (continue it, with the configuration saved in its run.json) or `--overwrite` (move
the old run aside). Ctrl-C writes a checkpoint at the current step and prints the command that
resumes it. Errors are one line (exit 2: a flag; exit 1: the data or the run); `--debug` shows
the traceback.

Under mpiexec (or srun) with N > 1 processes, training is data parallel (kinone-distributed):
--batch-size is per process (the global batch is N times it, as with PyTorch DDP), each
process trains on its share of every epoch, gradients are averaged, batch norm is synchronized
over the global batch unless --no-sync-bn, and rank 0 alone prints and writes the run
directory. A run resumes under the same number of processes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from kinone import models, nn, optim
from kinone.autograd import Tensor, backend, cuda, manual_seed
from kinone.nn import functional as F
from kinone.nn.serialization import atomic_write, load_with_metadata
from kinone.train import Trainer, TrainingInterrupted, load_checkpoint, mean_auroc, per_class_auroc
from kinone.train.checkpoint import FORMAT as CHECKPOINT_FORMAT
from kinone.train.checkpoint import read_checkpoint_progress
from kinone.train.run_log import RunWriter, read_run

from . import batch_transforms as B
from . import transforms as T
from .cache import CacheError, ImageCache
from .datasets.image_check import check_images
from .datasets.nih import CSV_NAMES, EXPECTED_LAYOUT, FINDINGS, TEST_LIST, TRAIN_VAL_LIST, NIHChestXray
from .datasets.nih_sample import make_sample
from .device_loader import DeviceLoader
from .loader import DataLoader

DEFAULTS = {
    "model": "resnet18",
    "image_size": 224,
    "epochs": 5,
    "batch_size": 32,
    "lr": 1e-3,
    "optimizer": "adamw",
    "in_channels": 1,
    "weight_decay": 1e-4,
    "num_workers": 0,
    "seed": 0,
    "val_fraction": 0.1,
    "checkpoint_every": 200,
}
# The sample run: about a minute on 2 CPU cores.
SAMPLE_DEFAULTS = {**DEFAULTS, "image_size": 64, "epochs": 3, "lr": 2e-3}
# Every model of kinone.models downsamples by 32: a smaller image leaves the last stage nothing but padding.
MIN_IMAGE_SIZE = 32
# What a resumed run takes from its run.json; a flag given with another value is refused.
RUN_CONFIG_FLAGS = {
    "model": "--model",
    "image_size": "--image-size",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "lr": "--lr",
    "optimizer": "--optimizer",
    "weight_decay": "--weight-decay",
    "seed": "--seed",
    "val_fraction": "--val-fraction",
    "in_channels": "--in-channels",
    "weights": "--weights",
    "sample": "--sample",
    "skip_missing": "--skip-missing",
    "no_sync_bn": "--no-sync-bn",
    "cache": "--cache",
}
# The model's graph (DOT text, kinone.nn.graph), written at the start of a run.
GRAPH_FILE = "graph.dot"
INSTALL_ONNX = "python -m pip install './packages/kinone-onnx[runtime]' (from the root of a Kinone clone)"


class UsageError(Exception):
    """A flag is wrong: exit code 2."""


class DataError(Exception):
    """The data or the run directory is wrong: exit code 1."""


def default_cache_dir() -> Path:
    base = os.environ.get("KINONE_CACHE") or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kinone"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints the whole usage block)
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    d, s = DEFAULTS, SAMPLE_DEFAULTS
    parser = _Parser(
        prog="kinone-train",
        description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Defaults are None here and filled in by resolve_args: a resumed run must tell a flag the
    # user gave from a default.
    add = parser.add_argument
    add("--data-dir", type=Path, help="the NIH ChestX-ray14 folder (Data_Entry_2017*.csv, split lists, images*/)")
    add(
        "--sample",
        action="store_true",
        default=None,
        help=f"generate the synthetic sample (cached in {default_cache_dir() / 'nih-sample'}) and train on it; "
        f"changes the defaults to --image-size {s['image_size']} --epochs {s['epochs']} --lr {s['lr']}",
    )
    add("--model", help=f"one of: {', '.join(models.list_models())} (default {d['model']})")
    add(
        "--image-size",
        type=int,
        help=f"square input size in pixels, at least {MIN_IMAGE_SIZE} (default {d['image_size']})",
    )
    add("--epochs", type=int, help=f"(default {d['epochs']})")
    add("--batch-size", type=int, help=f"images per step and per process under mpiexec (default {d['batch_size']})")
    add("--lr", type=float, help=f"peak learning rate of the one-cycle schedule (default {d['lr']})")
    add("--optimizer", choices=("sgd", "adam", "adamw"), help=f"(default {d['optimizer']})")
    add("--weight-decay", type=float, help=f"(default {d['weight_decay']})")
    add(
        "--device",
        choices=("cpu", "cuda", "auto"),
        default="cpu",
        help="where to train: cpu (default), cuda (CuPy and a GPU), or auto (cuda when available)",
    )
    add(
        "--tf32",
        action="store_true",
        help="on CUDA, float32 matrix products in TF32 (faster, about 10 mantissa bits; off by default)",
    )
    add("--num-workers", type=int, help=f"data-loading processes (default {d['num_workers']}: load in this process)")
    add(
        "--run-dir",
        type=Path,
        help="the run directory (default runs/<model>-<time>, runs/sample-<model>-<time> with --sample)",
    )
    add("--seed", type=int, help=f"(default {d['seed']})")
    add(
        "--resume",
        action="store_true",
        help="continue the run in --run-dir from its latest checkpoint, with its configuration",
    )
    add(
        "--overwrite",
        action="store_true",
        help="--run-dir holds a run: move it aside (to <run-dir>.old-<time>) and start anew",
    )
    add("--max-steps", type=int, help="stop after this many optimizer steps (default: all epochs)")
    add(
        "--checkpoint-every",
        type=int,
        help=f"steps between checkpoints, besides each epoch's end (default {d['checkpoint_every']})",
    )
    add("--in-channels", type=int, choices=(1, 3), help="1 (grayscale, default) or 3")
    add(
        "--weights",
        type=Path,
        help="initial weights: a state dict (.npz) or a Kinone checkpoint; 3-channel weights adapt to --in-channels 1",
    )
    add(
        "--val-fraction",
        type=float,
        help=f"fraction of train_val patients held out for validation (default {d['val_fraction']})",
    )
    add(
        "--cache",
        type=Path,
        help="read images from a kinone-prepare cache (decoded once; augmented a batch at a time); "
        "--image-size at most the cache's size",
    )
    add(
        "--skip-missing",
        action="store_true",
        default=None,
        help="train without the images whose files are missing (default: refuse)",
    )
    add("--no-check-images", action="store_true", help="skip reading every image's header before the first step")
    add("--export-onnx", action="store_true", help="also write model.onnx into the run directory (needs kinone-onnx)")
    add("--no-progress", action="store_true", help="no progress bars (they are off anyway when not on a terminal)")
    add(
        "--no-sync-bn",
        action="store_true",
        default=None,
        help="under mpiexec: batch norm over each process's batch instead of the global batch (SyncBatchNorm)",
    )
    add("--debug", action="store_true", help="show the traceback of an error")
    return parser


# ---------------------------------------------------------------------- the arguments
def resolve_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill in defaults (or, with --resume, the run's saved configuration) and check every value."""
    if args.resume and args.overwrite:
        raise UsageError(
            "--resume and --overwrite exclude each other: continue the run, or move it aside and start anew"
        )
    if args.resume:
        _take_run_config(args)
    for key, value in (SAMPLE_DEFAULTS if args.sample else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.sample, args.skip_missing, args.no_sync_bn = bool(args.sample), bool(args.skip_missing), bool(args.no_sync_bn)
    if args.data_dir is None:
        if not args.sample:
            raise UsageError("give --data-dir (the NIH ChestX-ray14 folder) or --sample")
        args.data_dir = default_cache_dir() / "nih-sample"
    if args.model not in models.list_models():
        raise UsageError(f"unknown --model {args.model!r}; choose one of {', '.join(models.list_models())}")
    _check_numbers(args)
    args.device = resolve_device(args.device)
    if args.run_dir is None:
        args.run_dir = Path("runs") / f"{'sample-' if args.sample else ''}{args.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    return args


def resolve_device(choice: str) -> str:
    """--device: "auto" is cuda when CuPy sees a GPU; "cuda" without one is a usage error."""
    available = backend.cuda_is_available()
    if choice == "auto":
        return "cuda" if available else "cpu"
    if choice == "cuda" and not available:
        raise UsageError(
            "--device cuda: no CUDA device is usable (CuPy not installed, or no GPU); "
            "install kinone-autograd[cuda12] or [cuda13] on a GPU machine, or use --device cpu"
        )
    return choice


def _check_numbers(args) -> None:
    def need(ok: bool, flag: str, value, expected: str):
        if not ok:
            raise UsageError(f"{flag} {value}: expected {expected}")

    need(args.epochs >= 1, "--epochs", args.epochs, "at least 1")
    need(args.batch_size >= 1, "--batch-size", args.batch_size, "at least 1")
    need(math.isfinite(args.lr) and args.lr > 0, "--lr", args.lr, "a positive number")
    need(math.isfinite(args.weight_decay) and args.weight_decay >= 0, "--weight-decay", args.weight_decay, "0 or more")
    need(
        args.image_size >= MIN_IMAGE_SIZE,
        "--image-size",
        args.image_size,
        f"at least {MIN_IMAGE_SIZE} (the models downsample by {MIN_IMAGE_SIZE})",
    )
    need(args.num_workers >= 0, "--num-workers", args.num_workers, "0 or more")
    need(0 <= args.seed < 2**32, "--seed", args.seed, "an integer in [0, 2**32)")
    need(0 <= args.val_fraction < 1, "--val-fraction", args.val_fraction, "a fraction in [0, 1)")
    need(args.checkpoint_every >= 1, "--checkpoint-every", args.checkpoint_every, "at least 1")
    need(args.max_steps is None or args.max_steps >= 1, "--max-steps", args.max_steps, "at least 1")
    if args.weights is not None and not args.weights.is_file():
        raise UsageError(f"--weights {args.weights}: no such file")


def _take_run_config(args) -> None:
    """--resume: the run's configuration comes from its run.json; a flag that disagrees is refused."""
    if args.run_dir is None:
        raise UsageError("--resume needs --run-dir: the run directory to continue")
    run_dir = args.run_dir
    if not (run_dir / "run.json").is_file():
        raise UsageError(
            f"--resume: {run_dir} holds no run (no run.json); check the path, or drop --resume to start a run there"
        )
    latest = run_dir / "checkpoints" / "latest.npz"
    if not latest.is_file():
        raise UsageError(
            f"--resume: {run_dir} has no checkpoint yet (it stopped before its first one, "
            f"{latest.name}); start it again with --overwrite"
        )
    try:
        info = read_run(run_dir)
        config = info["config"]
    except (ValueError, KeyError, TypeError) as error:
        raise DataError(f"--resume: cannot read the configuration in {run_dir / 'run.json'}: {error}") from None
    _refuse_a_live_run(run_dir, info)
    for key, flag in RUN_CONFIG_FLAGS.items():
        saved, given = config.get(key), getattr(args, key)
        if key in ("weights", "cache") and saved is not None:
            saved = Path(saved)
        if given is not None and given != saved:
            if key == "epochs":
                raise UsageError(
                    f"--epochs {given}: the run in {run_dir} was made for {saved} epochs and its one-cycle "
                    "learning-rate schedule spans exactly those, so it cannot be extended or shortened; "
                    f"start a new run from its weights instead: --weights {run_dir / 'checkpoints' / 'best.npz'}"
                )
            raise UsageError(
                f"{flag} {given} conflicts with the run's {key} = {saved} (from {run_dir / 'run.json'}); "
                "a resumed run keeps its configuration: drop the flag"
            )
        setattr(args, key, saved)
    saved_world = config.get("world_size", 1)
    if saved_world != args.world_size:
        how = "without mpiexec" if saved_world == 1 else f"under `mpiexec -n {saved_world}`"
        raise UsageError(
            f"--resume: the run in {run_dir} was trained by {saved_world} process(es) and this is "
            f"{args.world_size}; its batches per epoch and global batch depend on it: resume it {how}"
        )
    if args.data_dir is None and config.get("data_dir") is not None:
        args.data_dir = Path(config["data_dir"])
    args.saved_config = config
    args.run_status = info.get("status")


def _refuse_a_live_run(run_dir: Path, info: dict) -> None:
    pid = info.get("pid")
    if info.get("status") != "running" or info.get("host") != platform.node() or not isinstance(pid, int):
        return
    if pid == os.getpid():
        return
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return
    raise UsageError(f"--resume: the run in {run_dir} is being trained by process {pid} on this machine; stop it first")


def prepare_run_dir(args) -> None:
    """Refuse to train into a run directory that holds something, unless --resume or --overwrite."""
    run_dir = args.run_dir
    if args.resume:
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--run-dir {run_dir} is a file, not a directory")
    if not run_dir.is_dir() or not any(run_dir.iterdir()):
        return
    what = "already holds a run (run.json)" if (run_dir / "run.json").exists() else "is not empty"
    if not args.overwrite:
        raise UsageError(
            f"--run-dir {run_dir} {what}; continue it with --resume, choose another --run-dir, "
            "or pass --overwrite to move it aside and start anew"
        )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = run_dir.with_name(f"{run_dir.name}.old-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = run_dir.with_name(f"{run_dir.name}.old-{stamp}-{n}")
    run_dir.rename(aside)
    print(f"--overwrite: moved the old run in {run_dir} to {aside}", flush=True)


def check_data_dir(path: Path) -> None:
    """A clear error when --data-dir is not an NIH ChestX-ray14 folder."""
    if not path.is_dir():
        raise UsageError(f"--data-dir {path} does not exist (expected the NIH ChestX-ray14 folder)")
    has_csv = any((path / name).is_file() for name in CSV_NAMES)
    has_lists = (path / TRAIN_VAL_LIST).is_file() and (path / TEST_LIST).is_file()
    if not (has_csv and has_lists):
        raise DataError(f"--data-dir {path} does not look like NIH ChestX-ray14; expected in it: {EXPECTED_LAYOUT}")


def check_export_possible() -> None:
    if not _onnx_exporter():
        raise UsageError(f"--export-onnx needs kinone-onnx, which is not installed: {INSTALL_ONNX}")


def _onnx_exporter():
    # kinone-onnx registers its exporter as the `kinone.export` entry point "onnx": kinone-data
    # never imports kinone.onnx (the two sit side by side in the package layers).
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group="kinone.export")}.get("onnx")


# ---------------------------------------------------------------------- the pieces of a run
def write_model_graph(model, args) -> None:
    """`graph.dot` in the run directory: the model's forward drawn by kinone.nn.graph, one node
    per block (`layer1.0`), for the dashboard's Graph view. Written once, atomically; a resumed
    run keeps the one it has. Drawing changes nothing about the model (eval mode, no_grad). A
    model that cannot be drawn is a warning, not a failed run."""
    path = Path(args.run_dir) / GRAPH_FILE
    if path.exists():
        return
    example = Tensor(np.zeros((1, args.in_channels, args.image_size, args.image_size), np.float32)).to(args.device)
    try:
        text = nn.graph(model, example)
    except Exception as error:  # the graph is a view of the run, never a reason to stop it
        print(
            f"kinone-train: warning: the model's graph was not drawn ({type(error).__name__}: {error})", file=sys.stderr
        )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def transforms_for(image_size: int, in_channels: int, train: bool):
    steps = [T.Grayscale(in_channels), T.Resize((image_size, image_size))]
    if train:
        # Small rotations only: flips would move the heart to the other side.
        steps.append(T.RandomRotation(5))
    steps += [T.ToArray(), T.Normalize([0.5] * in_channels, [0.25] * in_channels)]
    return T.Compose(steps)


def make_optimizer(name: str, parameters, lr: float, weight_decay: float):
    if name == "sgd":
        return optim.SGD(parameters, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if name == "adam":
        return optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    return optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)


def build_model(args):
    """The model, with --weights loaded: a state dict, or the model part of a Kinone checkpoint."""
    if args.weights is None:
        return models.get_model(args.model, num_classes=len(FINDINGS), in_channels=args.in_channels)
    model = models.get_model(args.model, num_classes=len(FINDINGS), in_channels=args.in_channels)
    arrays, metadata = load_with_metadata(args.weights)
    if isinstance(metadata, dict) and metadata.get("format") == CHECKPOINT_FORMAT:
        arrays = {k[len("model.") :]: v for k, v in arrays.items() if k.startswith("model.")}
    models.load_weights(model, arrays)
    return model


def load_datasets(args, show_progress: bool, main_rank: bool = True) -> dict:
    """The three splits. Under mpiexec every process loads them; rank 0 alone prints the
    warnings and checks the images (the others would read the same headers again)."""
    cache = open_cache(args) if args.cache is not None else None
    args.cache_size = None if cache is None else cache.image_size
    with warnings.catch_warnings(record=True) as caught:  # skipped or repeated images: one line each
        warnings.simplefilter("always")
        datasets = {}
        for split in ("train", "val", "test"):
            transform = (
                None if cache is not None else transforms_for(args.image_size, args.in_channels, split == "train")
            )
            data = NIHChestXray(
                args.data_dir,
                split,
                transform=transform,
                val_fraction=args.val_fraction,
                seed=args.seed,
                skip_missing=args.skip_missing,
                cache=cache,
            )
            # From a cache, samples carry their augmentation key (a function of seed, epoch, index).
            datasets[split] = B.KeyedDataset(data) if cache is not None else data
    for warning in {str(w.message): None for w in caught} if main_rank else ():
        print(f"kinone-train: warning: {warning}", file=sys.stderr)
    saved = getattr(args, "saved_config", None)
    if saved:  # a resumed run must see the data it was trained on
        for split, data in datasets.items():
            before = saved.get(f"{split}_images")
            if before is not None and before != len(data):
                raise DataError(
                    f"--resume: the {split} split of {args.data_dir} has {len(data)} images; "
                    f"the run was trained with {before}"
                )
    if main_rank and not args.no_check_images and cache is None:  # a cache was checked when it was made
        paths = [path for data in datasets.values() for path in data.image_paths()]
        bad = check_images(paths, progress=show_progress)
        if bad:
            for path, reason in bad[:50]:
                print(f"kinone-train: bad image {path}: {reason}", file=sys.stderr)
            more = f" ({len(bad) - 50} more not shown)" if len(bad) > 50 else ""
            raise DataError(
                f"{len(bad)} of {len(paths)} images cannot be read{more}; fix or remove them "
                "(with --skip-missing for removed files), or pass --no-check-images"
            )
    return datasets


def open_cache(args):
    """The --cache folder, checked against --image-size (one-line errors)."""
    try:
        cache = ImageCache(args.cache)
    except CacheError as error:
        raise DataError(str(error)) from None
    if cache.image_size < args.image_size:
        raise UsageError(
            f"--image-size {args.image_size} is larger than the cache's {cache.image_size} ({args.cache}); "
            f"prepare one with kinone-prepare --image-size {args.image_size}"
        )
    return cache


def batch_augmentation(args, train: bool):
    """What the PIL transforms do per image, on a batch of cached uint8 images at once."""
    steps = [] if args.image_size == args.cache_size else [B.Resize(args.image_size)]
    if train:
        steps.append(B.RandomRotation(5))  # small rotations only, as transforms_for
    steps.append(B.Normalize([0.5], [0.25]))
    augment = B.Compose(steps)
    return augment if args.in_channels == 1 else _RepeatChannels(augment, args.in_channels)


class _RepeatChannels:
    """A grayscale augmentation whose output is repeated to `channels` (--in-channels 3);
    a class, not a lambda: forkserver workers receive it pickled."""

    def __init__(self, augment, channels: int):
        self.augment, self.channels = augment, channels

    def __call__(self, images, keys=None):
        return self.augment(images, keys).repeat(self.channels, axis=1)


def progress_bar(enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return lambda iterable, **kwargs: tqdm(iterable, dynamic_ncols=True, **kwargs)


def auroc_table(values: np.ndarray) -> str:
    lines = [f"{'finding':<20} {'AUROC':>7}"]
    for name, value in zip(FINDINGS, values):
        lines.append(f"{name:<20} {'n/a' if np.isnan(value) else f'{value:.3f}':>7}")
    finite = values[np.isfinite(values)]
    lines.append(f"{'mean':<20} {float(np.mean(finite)) if finite.size else float('nan'):>7.3f}")
    return "\n".join(lines)


def _print_progress(steps_per_epoch: int):
    """Without a terminal: one line every ~10% of an epoch instead of a progress bar."""
    every = max(1, steps_per_epoch // 10)

    def callback(trainer, step, epoch, loss):
        if step % every == 0:
            print(f"epoch {epoch + 1} step {step}: loss {loss:.4f}", flush=True)

    return callback


def _print_validation(epochs: int):
    def callback(trainer, epoch, step, results):
        auroc = results.get("mean_auroc")
        auroc_text = "n/a" if auroc is None or not math.isfinite(auroc) else f"{auroc:.3f}"
        print(
            f"epoch {epoch + 1}/{epochs} (step {step}): validation loss {results.get('loss', float('nan')):.4f}, "
            f"mean AUROC {auroc_text}",
            flush=True,
        )

    return callback


def resume_command(args) -> str:
    command = f"kinone-train --run-dir {args.run_dir} --resume"
    if args.num_workers:
        command += f" --num-workers {args.num_workers}"
    if args.world_size > 1:
        command = f"mpiexec -n {args.world_size} {command}"
    return command


# ---------------------------------------------------------------------- data parallel (MPI)
def start_distributed():
    """kinone.distributed, initialised, when this process was started by mpiexec (or srun)
    with more than one process; else None. kinone-distributed is imported only here, so a
    single-process kinone-train needs neither it nor mpi4py."""
    try:
        import kinone.distributed as dist
    except ImportError:
        size = _launcher_world_size()
        if size > 1:
            raise UsageError(
                f"started by mpiexec with {size} processes, but kinone-distributed is not installed: "
                "python -m pip install './packages/kinone-distributed[mpich]' (from the root of a Kinone clone)"
            ) from None
        return None
    if not dist.launched_under_mpi():
        return None
    dist.init()
    return dist


def _launcher_world_size() -> int:
    """The process count mpiexec (MPICH, Open MPI) or srun announces, read from the environment."""
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS"):
        try:
            return int(os.environ[name])
        except (KeyError, ValueError):
            continue
    return 1


def _abort_all_ranks(args, code: int) -> None:
    """Under mpiexec, one process's error ends every process (the others would wait for it in
    their next collective forever)."""
    dist = getattr(args, "distributed", None)
    if dist is None or dist.world_size() <= 1:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    dist.abort(code)  # ends every rank (MPI_Abort alone may return before the job ends)


def _is_main(args) -> bool:
    dist = getattr(args, "distributed", None)
    return dist is None or dist.is_main()


def _error_prefix(args) -> str:
    dist = getattr(args, "distributed", None)
    return "kinone-train" if dist is None else f"kinone-train (rank {dist.rank()})"


def make_loaders(args, datasets: dict, dist) -> dict:
    """One DataLoader per split. Under mpiexec each process loads its share (a
    DistributedSampler): the train split shuffled per epoch with --seed, its tail cut so that
    every process takes the same number of steps; the val and test splits in order, padded to
    equal shares (the Trainer drops the padding when it gathers the predictions); workers
    started by forkserver, since forking a process that initialised MPI is a known crash."""

    def collate(split):  # from a cache: the batch is augmented where it is collated (in the workers)
        return None if args.cache is None else B.AugmentCollate(batch_augmentation(args, split == "train"))

    if dist is None:
        return {
            split: DataLoader(
                data,
                batch_size=args.batch_size,
                shuffle=split == "train",
                num_workers=args.num_workers,
                drop_last=split == "train" and len(data) > args.batch_size,
                seed=args.seed,
                collate_fn=collate(split),
            )
            for split, data in datasets.items()
        }
    loaders = {}
    for split, data in datasets.items():
        train = split == "train"
        sampler = dist.DistributedSampler(len(data), shuffle=train, seed=args.seed, drop_last=train)
        loaders[split] = DataLoader(
            data,
            batch_size=args.batch_size,
            sampler=sampler,
            num_workers=args.num_workers,
            drop_last=train and len(sampler) > args.batch_size,
            seed=args.seed,
            multiprocessing_context="forkserver" if args.num_workers else None,
            collate_fn=collate(split),
        )
    return loaders


# ---------------------------------------------------------------------- the command
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.run_started, args.distributed, args.world_size = False, None, 1
    try:
        return run(args)
    except UsageError as error:
        print(f"{_error_prefix(args)}: {error}", file=sys.stderr)
        _abort_all_ranks(args, 2)
        return 2
    except TrainingInterrupted as stop:  # every rank stops at the same step (the Trainer agrees on it)
        if _is_main(args):
            print(
                f"kinone-train: interrupted at epoch {stop.epoch + 1}, step {stop.step}; checkpoint {stop.checkpoint}; "
                f"resume with: {resume_command(args)}",
                file=sys.stderr,
            )
        return 130
    except KeyboardInterrupt:
        print(
            "kinone-train: interrupted" + (f"; resume with: {resume_command(args)}" if args.run_started else ""),
            file=sys.stderr,
        )
        _abort_all_ranks(args, 130)
        return 130
    except Exception as error:
        if args.run_started and _is_main(args):
            _mark_failed(args.run_dir, error)
        if args.debug:
            raise  # under mpiexec, kinone.distributed's hook prints the traceback and ends every rank
        hint = "" if isinstance(error, (DataError, OSError)) else " (--debug shows the traceback)"
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"{_error_prefix(args)}: {message}{hint}", file=sys.stderr)
        _abort_all_ranks(args, 1)
        return 1


def _mark_failed(run_dir: Path, error: Exception) -> None:
    """run.json tells the truth: a run that stopped on an error is `failed`, with the error."""
    try:
        info = read_run(run_dir)
    except (OSError, ValueError):
        return
    if info.get("status") in ("running", "finished", "interrupted"):
        writer = RunWriter(run_dir, reopen=True)
        writer.close("failed", error=f"{type(error).__name__}: {' '.join(str(error).split())}")


def run(args) -> int:
    dist = args.distributed = start_distributed()
    main_rank = dist is None or dist.is_main()
    say = print if main_rank else (lambda *parts, **kwargs: None)
    args.world_size = 1 if dist is None else dist.world_size()
    args = resolve_args(args)
    if dist is not None:  # a default run directory is named after the time: rank 0's
        args.run_dir = Path(dist.broadcast_state({"run_dir": str(args.run_dir)})["run_dir"])
    show_progress = sys.stderr.isatty() and not args.no_progress and main_rank
    if args.export_onnx:
        check_export_possible()
    if args.resume:
        args.run_started = True  # from here on, a failure is the resumed run's: run.json says so
        progress = read_checkpoint_progress(args.run_dir / "checkpoints" / "latest.npz")
        if args.run_status == "finished" and progress.get("epoch", 0) >= args.epochs:
            say(
                f"{args.run_dir}: the run finished all its {args.epochs} epochs (step {progress.get('step')}); "
                "nothing to resume"
            )
            return 0
    elif main_rank:
        prepare_run_dir(args)
    if main_rank and args.sample and not (args.data_dir / CSV_NAMES[0]).is_file():
        print(f"Generating the synthetic sample dataset in {args.data_dir} ...", flush=True)
        make_sample(args.data_dir, progress=show_progress)
    if dist is not None:
        dist.barrier()  # rank 0 has moved an old run aside and written the sample
    check_data_dir(args.data_dir)

    random.seed(args.seed)
    manual_seed(args.seed)
    np.random.seed(args.seed)
    try:
        datasets = load_datasets(args, show_progress, main_rank)
    except (OSError, ValueError) as error:
        raise DataError(str(error)) from error
    loaders = make_loaders(args, datasets, dist)
    if args.device != "cpu":  # batches uploaded through pinned buffers, overlapping the previous step
        loaders = {split: DeviceLoader(loader, args.device) for split, loader in loaders.items()}
    if args.tf32:
        cuda.set_allow_tf32(True)
    model = build_model(args).to(args.device)
    if main_rank:
        write_model_graph(model, args)
    if dist is not None:
        if not args.no_sync_bn:
            model = dist.convert_sync_batchnorm(model)
        dist.broadcast_parameters(model)  # every rank starts from rank 0's weights
    optimizer = make_optimizer(args.optimizer, model.parameters(), args.lr, args.weight_decay)
    # The schedule spans all epochs whatever --max-steps says, so a run stopped early and
    # resumed follows the same learning-rate curve as one that never stopped.
    total_steps = args.epochs * len(loaders["train"])
    scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=max(total_steps, 1), pct_start=0.2)
    pos_weight = Tensor(datasets["train"].pos_weight().astype(np.float32)).to(args.device)

    def loss_fn(logits, target):
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)

    skip = {
        "resume",
        "overwrite",
        "debug",
        "tf32",
        "run_started",
        "saved_config",
        "run_status",
        "no_progress",
        "distributed",
    }
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in skip}
    config.update(
        findings=list(FINDINGS),
        train_images=len(datasets["train"]),
        val_images=len(datasets["val"]),
        test_images=len(datasets["test"]),
    )
    if dist is not None:
        dist.check_same_everywhere("kinone-train: the configuration and split sizes", config)
    on = args.device if args.world_size == 1 else f"{args.world_size} processes on {args.device}"
    say(
        f"{args.model}: {model.num_parameters():,} parameters; {len(datasets['train'])} train / "
        f"{len(datasets['val'])} val / {len(datasets['test'])} test images at {args.image_size}x{args.image_size}; "
        f"on {on}; run directory {args.run_dir}",
        flush=True,
    )
    trainer = Trainer(
        model,
        optimizer,
        loss_fn,
        loaders["train"],
        loaders["val"],
        run_dir=args.run_dir,
        epochs=args.epochs,
        scheduler=scheduler,
        metrics={"mean_auroc": mean_auroc, "auroc": per_class_auroc},
        best_metric="mean_auroc",
        max_steps=args.max_steps,
        checkpoint_every=args.checkpoint_every,
        grad_norm_every=50,
        config=config,
        model_name=args.model,
        progress=progress_bar(show_progress),
        callbacks=[] if show_progress or not main_rank else [_print_progress(len(loaders["train"]))],
        epoch_callbacks=[_print_validation(args.epochs)] if main_rank else [],
        device=args.device,
        distributed=dist,
    )
    args.run_started = True
    if args.resume:  # `progress`: read above from the same latest.npz
        say(
            f"resuming {args.run_dir} from {trainer.latest_path.name}: epoch {progress['epoch'] + 1} of {args.epochs}, "
            f"batch {progress['batch']}, step {progress['step']}",
            flush=True,
        )
    summary = trainer.fit(resume=args.resume)
    say(f"trained {summary['step']} steps; best validation mean AUROC {summary['best']}")
    if dist is not None:
        dist.barrier()  # rank 0's last checkpoint is on disk before anyone reads it

    # Test with the best checkpoint (the latest if no validation improved).
    best = trainer.best_path if trainer.best_path.exists() else trainer.latest_path
    load_checkpoint(best, model, restore_rng=False)
    results = trainer.evaluate(loaders["test"])
    if not main_rank:
        return 0
    test_auroc = np.array(
        [np.nan if v is None else v for v in results.get("auroc", [np.nan] * len(FINDINGS))], dtype=float
    )
    writer = RunWriter(args.run_dir, reopen=True)
    writer.log(summary["step"], summary["epoch"], "test", **results)
    writer.close("finished", test_mean_auroc=results.get("mean_auroc"))
    table = json.dumps(dict(zip(FINDINGS, [None if np.isnan(v) else v for v in test_auroc])), indent=2)
    atomic_write(Path(args.run_dir) / "test_auroc.json", lambda f: f.write(table.encode("utf-8")))
    print(f"\nTest split ({len(datasets['test'])} images), checkpoint {best.name}:")
    print(auroc_table(test_auroc))
    if args.export_onnx:
        path = _onnx_exporter().load()(model, args.run_dir, image_size=args.image_size, in_channels=args.in_channels)
        print(f"exported {path}")
    print(f"\nRun directory: {Path(args.run_dir).resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
