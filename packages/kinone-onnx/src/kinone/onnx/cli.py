"""`kinone-export`: write a trained run (or one checkpoint) as an ONNX file.

    kinone-export runs/r18                     # best (else latest) checkpoint -> runs/r18/model.onnx
    kinone-export runs/r18/checkpoints/latest.npz --out r18.onnx --verify

The model is rebuilt from the run's `run.json` (model name, input channels, image size and
the number of findings, as `kinone-train` writes them); `--model`, `--num-classes`,
`--in-channels` and `--image-size` override it, and are required for a bare state-dict file
with no run around it. `--verify` runs the file in onnxruntime against Kinone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from kinone import models
from kinone.autograd import Tensor
from kinone.nn.serialization import load_with_metadata

from .export import DEFAULT_OPSET, export
from .graph import ExportError


def find_run(path: Path) -> tuple[Path | None, Path]:
    """(run directory or None, checkpoint file) for a run directory or a checkpoint path."""
    if path.is_dir():
        for name in ("best.npz", "latest.npz"):
            if (path / "checkpoints" / name).is_file():
                return path, path / "checkpoints" / name
        raise SystemExit(f"kinone-export: {path} holds no checkpoints/best.npz or checkpoints/latest.npz")
    if not path.is_file():
        raise SystemExit(f"kinone-export: {path} does not exist (expected a run directory or a .npz checkpoint)")
    for parent in (path.parent, path.parent.parent):
        if (parent / "run.json").is_file():
            return parent, path
    return None, path


def model_options(run_dir: Path | None, args) -> dict:
    """Model name, classes, input channels and image size: the flags, else the run's run.json."""
    info = json.loads((run_dir / "run.json").read_text()) if run_dir is not None else {}
    config = info.get("config", {})
    findings = config.get("findings")
    options = {
        "model": args.model or info.get("model") or config.get("model"),
        "num_classes": args.num_classes or config.get("num_classes") or (len(findings) if findings else None),
        "in_channels": args.in_channels or config.get("in_channels") or 3,
        "image_size": args.image_size or config.get("image_size") or 224,
    }
    missing = [f"--{k.replace('_', '-')}" for k in ("model", "num_classes") if not options[k]]
    if missing:
        where = f"{run_dir / 'run.json'}" if run_dir is not None else "a run.json (none found beside the checkpoint)"
        raise SystemExit(f"kinone-export: cannot tell the model from {where}; give {' and '.join(missing)}")
    if options["model"] not in models.list_models():
        raise SystemExit(f"kinone-export: unknown model {options['model']!r}; one of {', '.join(models.list_models())}")
    return options


def load_weights(model, checkpoint: Path) -> None:
    """A kinone-train checkpoint (`model.<key>` arrays) or a plain state-dict `.npz`."""
    arrays, metadata = load_with_metadata(checkpoint)
    if metadata and metadata.get("format") == "kinone-checkpoint":
        arrays = {k[len("model.") :]: v for k, v in arrays.items() if k.startswith("model.")}
    model.load_state_dict(arrays)


def example_input(in_channels: int, image_size: int) -> Tensor:
    """The input to trace with: a batch of 2 standard-normal images (the weights decide the rest)."""
    return Tensor(np.random.default_rng(0).standard_normal((2, in_channels, image_size, image_size)).astype(np.float32))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kinone-export", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", type=Path, help="a kinone-train run directory, or a .npz checkpoint / state dict")
    parser.add_argument("--out", type=Path, default=None, help="the ONNX file (default: <run dir>/model.onnx)")
    parser.add_argument("--verify", action="store_true", help="run the file in onnxruntime and compare with Kinone")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    parser.add_argument("--model", default=None, help="model name (default: from run.json)")
    parser.add_argument("--num-classes", type=int, default=None)
    parser.add_argument("--in-channels", type=int, default=None)
    parser.add_argument("--image-size", type=int, default=None, help="size of the example input (any size runs later)")
    parser.add_argument("--static-batch", action="store_true", help="fix the batch size to the example's (2)")
    parser.add_argument(
        "--dynamic-size",
        action="store_true",
        help="also let height and width vary (the example's size is only where tracing starts)",
    )
    parser.add_argument("--rtol", type=float, default=1e-4, help="--verify: relative tolerance (default 1e-4)")
    parser.add_argument("--atol", type=float, default=1e-5, help="--verify: absolute tolerance (default 1e-5)")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="--verify: fail past the tolerance even where Kinone in float64 shows the difference is "
        "float32 rounding (by default such a difference passes, and the report says so)",
    )
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    run_dir, checkpoint = find_run(args.source)
    options = model_options(run_dir, args)
    out = args.out or ((run_dir or checkpoint.parent) / "model.onnx")
    model = models.get_model(options["model"], num_classes=options["num_classes"], in_channels=options["in_channels"])
    load_weights(model, checkpoint)
    example = example_input(options["in_channels"], options["image_size"])
    try:
        proto = export(
            model, example, out, opset=args.opset, dynamic_batch=not args.static_batch, dynamic_size=args.dynamic_size
        )
    except ExportError as error:
        print(error, file=sys.stderr)
        return 1
    print(
        f"exported {options['model']} from {checkpoint} to {out} (opset {args.opset}, {len(proto.graph.node)} nodes, "
        f"{out.stat().st_size / 2**20:.1f} MiB)"
    )
    if args.verify:
        from .verify import VerificationError, verify

        try:
            report = verify(
                model, out, example, rtol=args.rtol, atol=args.atol, accept_float32_rounding=not args.strict
            )
        except (VerificationError, ImportError) as error:  # out of tolerance, or no onnxruntime
            print(error, file=sys.stderr)
            return 1
        print(f"verified in onnxruntime: {report}")
    return 0


def export_trained(model, run_dir, image_size: int, in_channels: int) -> Path:
    """What `kinone-train --export-onnx` calls (through the `kinone.export` entry point):
    write `<run_dir>/model.onnx` for a trained model and return its path."""
    path = Path(run_dir) / "model.onnx"
    export(model, example_input(in_channels, image_size), path)
    return path


if __name__ == "__main__":
    raise SystemExit(main())
