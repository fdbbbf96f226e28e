"""Convert a PyTorch checkpoint (`.pth`, e.g. torchvision's) to a Kinone `.npz` state dict.

    python -m kinone.models.convert IN.pth OUT.npz [--model resnet18]

Reading `.pth` needs PyTorch: this module is the one place in Kinone that imports torch, and
only when a conversion runs (inside `read_torch_checkpoint`), with a clear error when it is
not installed. The file is read with `torch.load(..., weights_only=True)`, which refuses
arbitrary pickled objects. Checkpoints that wrap the state dict (`{"state_dict": ...}`,
`{"model": ...}`) are unwrapped, and DataParallel's `module.` prefix is removed. The output
holds one array per key, in the checkpoint's order (`num_batches_tracked` included, int64),
written atomically without pickle by `kinone.nn.save`; load it with
`kinone.models.<name>(weights=OUT.npz)` or `model.load_state_dict(kinone.nn.load(OUT.npz))`.

With `--model NAME` the converted state dict is also loaded, strictly, into
`kinone.models.get_model(NAME)` (number of classes and input channels read from the
weights), so a name mismatch is caught now rather than at training time.
"""

from __future__ import annotations

import argparse
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np

from kinone import nn

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")


class ConversionError(RuntimeError):
    """A checkpoint that cannot be converted (torch missing, unreadable file, no state dict)."""


def read_torch_checkpoint(path) -> tuple[dict, str]:
    """`torch.load(path, map_location="cpu", weights_only=True)`; returns (object, torch version)."""
    try:
        import torch  # the only torch import in Kinone; deliberately lazy
    except ImportError as error:
        raise ConversionError(
            f"kinone.models.convert: reading {path} needs PyTorch, which is not installed "
            f"({error}). Install it (`pip install torch`) to convert .pth files, or convert "
            f"where PyTorch is available and copy the .npz."
        ) from error
    try:
        return torch.load(path, map_location="cpu", weights_only=True), torch.__version__
    except FileNotFoundError:
        raise ConversionError(f"kinone.models.convert: no such file: {path}") from None
    except Exception as error:
        raise ConversionError(
            f"kinone.models.convert: cannot read {path} with torch.load(weights_only=True): {error}"
        ) from error


def _to_numpy(value) -> np.ndarray | None:
    """A torch tensor (or array-like number) as a NumPy array; None for other objects."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        tensor = value.detach().cpu()
        if str(tensor.dtype) == "torch.bfloat16":  # NumPy has no bfloat16
            tensor = tensor.float()
        return tensor.numpy().copy()
    if isinstance(value, np.ndarray):
        return value
    return None


def state_dict_to_numpy(checkpoint, source: str = "checkpoint") -> OrderedDict[str, np.ndarray]:
    """The state dict inside `checkpoint` (a dict of tensors, possibly wrapped under
    `state_dict`/`model_state_dict`/`model`, keys possibly prefixed `module.`) as NumPy arrays."""
    if not isinstance(checkpoint, dict):
        raise ConversionError(f"kinone.models.convert: {source} holds a {type(checkpoint).__name__}, not a state dict")
    for key in WRAPPER_KEYS:
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    out: OrderedDict = OrderedDict()
    skipped = []
    for key, value in checkpoint.items():
        array = _to_numpy(value)
        if array is None:
            skipped.append(key)
            continue
        out[key[len("module.") :] if key.startswith("module.") else key] = array
    if not out:
        raise ConversionError(f"kinone.models.convert: {source} holds no tensors (keys: {list(checkpoint)[:10]})")
    if skipped:
        print(f"kinone.models.convert: skipped non-tensor entries of {source}: {skipped}", file=sys.stderr)
    return out


def check_against_model(state_dict, name: str) -> None:
    """Load `state_dict` strictly into `kinone.models.get_model(name)`, sized from the weights."""
    from .registry import get_model
    from .weights import first_conv_key

    probe = get_model(name)
    conv_key = first_conv_key(probe)
    fc_key = next(f"{n}.weight" for n, m in reversed(list(probe.named_modules())) if isinstance(m, nn.Linear))
    if conv_key not in state_dict or fc_key not in state_dict:
        missing = [k for k in (conv_key, fc_key) if k not in state_dict]
        raise ConversionError(f"kinone.models.convert: the weights lack {missing}: not a {name} state dict")
    model = get_model(name, num_classes=state_dict[fc_key].shape[0], in_channels=state_dict[conv_key].shape[1])
    model.load_state_dict(state_dict, strict=True)


def convert(in_path, out_path, model: str | None = None) -> OrderedDict[str, np.ndarray]:
    """Convert `in_path` (.pth) to `out_path` (.npz); with `model`, check it loads strictly."""
    checkpoint, torch_version = read_torch_checkpoint(in_path)
    state_dict = state_dict_to_numpy(checkpoint, source=str(in_path))
    if model is not None and model.startswith("densenet"):
        from .densenet import remap_legacy_keys

        state_dict = remap_legacy_keys(state_dict)  # torchvision's published files use old names
    if model is not None:
        check_against_model(state_dict, model)
    metadata = {"converted_from": Path(in_path).name, "converted_by": "kinone.models.convert", "torch": torch_version}
    if model is not None:
        metadata["model"] = model
    nn.save(state_dict, out_path, metadata=metadata)
    return state_dict


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kinone.models.convert",
        description="Convert a PyTorch .pth state dict (e.g. torchvision's) to a Kinone .npz state dict.",
    )
    parser.add_argument("input", type=Path, help="the .pth file (read with torch.load(weights_only=True))")
    parser.add_argument("output", type=Path, help="the .npz file to write")
    parser.add_argument("--model", help="also check that the weights load strictly into this kinone.models name")
    args = parser.parse_args(argv)
    try:
        state_dict = convert(args.input, args.output, model=args.model)
    except (ConversionError, RuntimeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    count = sum(int(a.size) for k, a in state_dict.items() if not k.endswith("num_batches_tracked"))
    checked = f", checked as {args.model}" if args.model else ""
    print(f"wrote {args.output}: {len(state_dict)} arrays, {count:,} elements{checked}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
