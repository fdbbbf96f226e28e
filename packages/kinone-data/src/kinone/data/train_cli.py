"""`kinone-train`: train a model on NIH ChestX-ray14 from the command line.

    kinone-train --data-dir /data/nih --model resnet18 --image-size 224 --epochs 5 \
                 --batch-size 32 --lr 1e-3 --optimizer adamw --num-workers 2 --run-dir runs/r18
    kinone-train --sample        # a synthetic sample in the real layout, a small model, a few minutes

Multi-label training with BCE-with-logits (pos_weight from the training split), validation
per epoch (per-finding AUROC), checkpoints in the run directory (`--resume` continues a run),
and at the end a per-finding AUROC table on the test split, computed with the best checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from kinone import models, optim
from kinone.autograd import Tensor, manual_seed
from kinone.nn import functional as F
from kinone.train import Trainer, load_checkpoint, mean_auroc, per_class_auroc
from kinone.train.run_log import RunWriter

from . import transforms as T
from .datasets.nih import FINDINGS, NIHChestXray, make_sample
from .loader import DataLoader

DEFAULTS = {"model": "resnet18", "image_size": 224, "epochs": 5, "batch_size": 32, "lr": 1e-3,
            "optimizer": "adamw", "in_channels": 1}
# The sample run: about a minute on 2 CPU cores.
SAMPLE_DEFAULTS = {**DEFAULTS, "image_size": 64, "epochs": 3, "lr": 2e-3}


def default_cache_dir() -> Path:
    base = os.environ.get("KINONE_CACHE") or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kinone"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kinone-train", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="the NIH ChestX-ray14 folder (Data_Entry_2017*.csv, split lists, images*/)")
    parser.add_argument("--sample", action="store_true", help="generate the synthetic sample (cached) and train a small model on it")
    parser.add_argument("--model", default=None, help=f"one of: {', '.join(models.list_models())} (default resnet18)")
    parser.add_argument("--image-size", type=int, default=None, help="square input size in pixels (default 224)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate of the one-cycle schedule")
    parser.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default=None)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--run-dir", type=Path, default=None, help="default runs/<model>-<time>")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its latest checkpoint")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps")
    parser.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints (and at each epoch end)")
    parser.add_argument("--in-channels", type=int, choices=(1, 3), default=None, help="1 (grayscale, default) or 3")
    parser.add_argument("--weights", type=Path, default=None, help="initial weights (.npz); 3-channel weights adapt to --in-channels 1")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--export-onnx", action="store_true", help="also write model.onnx into the run directory (needs kinone-onnx)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (they are off anyway when not on a terminal)")
    return parser


def resolve_args(args: argparse.Namespace) -> argparse.Namespace:
    for key, value in (SAMPLE_DEFAULTS if args.sample else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.sample:
        if args.data_dir is None:
            args.data_dir = default_cache_dir() / "nih-sample"
    elif args.data_dir is None:
        raise SystemExit("kinone-train: give --data-dir (the NIH ChestX-ray14 folder) or --sample")
    if args.model not in models.list_models():
        raise SystemExit(f"kinone-train: unknown --model {args.model!r}; choose one of {', '.join(models.list_models())}")
    if args.run_dir is None:
        args.run_dir = Path("runs") / f"{'sample-' if args.sample else ''}{args.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    return args


def check_data_dir(path: Path) -> None:
    """A clear error when --data-dir is not an NIH ChestX-ray14 folder."""
    if not path.is_dir():
        raise SystemExit(f"kinone-train: --data-dir {path} does not exist (expected the NIH ChestX-ray14 folder)")
    expected = ["Data_Entry_2017_v2020.csv or Data_Entry_2017.csv", "train_val_list.txt", "test_list.txt",
                "images/ or images_001/images/ ... images_012/images/ (or the PNGs themselves)"]
    has_csv = any((path / name).is_file() for name in ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv"))
    has_lists = (path / "train_val_list.txt").is_file() and (path / "test_list.txt").is_file()
    if not (has_csv and has_lists):
        raise SystemExit(f"kinone-train: {path} does not look like NIH ChestX-ray14; expected in it: " + "; ".join(expected))


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


def main(argv=None) -> int:
    args = resolve_args(build_parser().parse_args(argv))
    show_progress = sys.stderr.isatty() and not args.no_progress
    if args.sample and not (args.data_dir / "Data_Entry_2017_v2020.csv").is_file():
        print(f"Generating the synthetic sample dataset in {args.data_dir} ...", flush=True)
        make_sample(args.data_dir, progress=show_progress)
    check_data_dir(args.data_dir)

    manual_seed(args.seed)
    np.random.seed(args.seed)
    datasets = {
        split: NIHChestXray(args.data_dir, split, transform=transforms_for(args.image_size, args.in_channels, split == "train"),
                            val_fraction=args.val_fraction, seed=args.seed)
        for split in ("train", "val", "test")
    }
    loaders = {
        split: DataLoader(data, batch_size=args.batch_size, shuffle=split == "train", num_workers=args.num_workers,
                          drop_last=split == "train" and len(data) > args.batch_size, seed=args.seed)
        for split, data in datasets.items()
    }
    model = models.get_model(args.model, num_classes=len(FINDINGS), in_channels=args.in_channels, weights=args.weights)
    optimizer = make_optimizer(args.optimizer, model.parameters(), args.lr, args.weight_decay)
    # The schedule spans all epochs whatever --max-steps says, so a run stopped early and
    # resumed follows the same learning-rate curve as one that never stopped.
    total_steps = args.epochs * len(loaders["train"])
    scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=max(total_steps, 1), pct_start=0.2)
    pos_weight = Tensor(datasets["train"].pos_weight().astype(np.float32))

    def loss_fn(logits, target):
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)

    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    config.update(findings=list(FINDINGS), train_images=len(datasets["train"]), val_images=len(datasets["val"]),
                  test_images=len(datasets["test"]))
    print(f"{args.model}: {model.num_parameters():,} parameters; {len(datasets['train'])} train / "
          f"{len(datasets['val'])} val / {len(datasets['test'])} test images at {args.image_size}x{args.image_size}; "
          f"run directory {args.run_dir}", flush=True)
    trainer = Trainer(model, optimizer, loss_fn, loaders["train"], loaders["val"], run_dir=args.run_dir,
                      epochs=args.epochs, scheduler=scheduler, metrics={"mean_auroc": mean_auroc, "auroc": per_class_auroc},
                      best_metric="mean_auroc", max_steps=args.max_steps, checkpoint_every=args.checkpoint_every,
                      grad_norm_every=50, config=config, model_name=args.model, progress=progress_bar(show_progress),
                      callbacks=[] if show_progress else [_print_progress(len(loaders["train"]))])
    summary = trainer.fit(resume=args.resume)
    print(f"trained {summary['step']} steps; best validation mean AUROC {summary['best']}")

    # Test with the best checkpoint (the latest if no validation improved).
    best = trainer.best_path if trainer.best_path.exists() else trainer.latest_path
    load_checkpoint(best, model, restore_rng=False)
    results = trainer.evaluate(loaders["test"])
    test_auroc = np.array([np.nan if v is None else v for v in results.get("auroc", [np.nan] * len(FINDINGS))], dtype=float)
    writer = RunWriter(args.run_dir, reopen=True)
    writer.log(summary["step"], summary["epoch"], "test", **results)
    writer.close("finished", test_mean_auroc=results.get("mean_auroc"))
    (Path(args.run_dir) / "test_auroc.json").write_text(json.dumps(dict(zip(FINDINGS, [None if np.isnan(v) else v for v in test_auroc])), indent=2))
    print(f"\nTest split ({len(datasets['test'])} images), checkpoint {best.name}:")
    print(auroc_table(test_auroc))
    if args.export_onnx:
        _export_onnx(model, args)
    print(f"\nRun directory: {Path(args.run_dir).resolve()}")
    return 0


def _print_progress(steps_per_epoch: int):
    """Without a terminal: one line every ~10% of an epoch instead of a progress bar."""
    every = max(1, steps_per_epoch // 10)

    def callback(trainer, step, epoch, loss):
        if step % every == 0:
            print(f"epoch {epoch + 1} step {step}: loss {loss:.4f}", flush=True)

    return callback


def _export_onnx(model, args) -> None:
    # kinone-onnx registers its exporter as the `kinone.export` entry point "onnx": kinone-data
    # never imports kinone.onnx (the two sit side by side in the package layers).
    from importlib.metadata import entry_points

    exporters = {ep.name: ep for ep in entry_points(group="kinone.export")}
    if "onnx" not in exporters:
        print("--export-onnx: kinone-onnx is not installed (pip install kinone-onnx); skipped", file=sys.stderr)
        return
    path = exporters["onnx"].load()(model, args.run_dir, image_size=args.image_size, in_channels=args.in_channels)
    print(f"exported {path}")


if __name__ == "__main__":
    raise SystemExit(main())
