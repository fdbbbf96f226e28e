"""Run pytorch/examples' programs in Kinone with only their imports changed.

    python packages/kinone-torch/tools/run_pytorch_examples.py --examples /path/to/pytorch/examples

For each of mnist, vae, dcgan, regression and word_language_model: the example's folder is
copied into a temporary folder; in every `.py` file there, the lines that import `torch` or
`torchvision` are rewritten to import `kinone.torch` / `kinone.torchvision` under the same
names (nothing else in the program changes); what the program would download is replaced by
generated data of the same shapes in the layout it expects (MNIST's raw IDX files under
`../data/MNIST/raw`, dcgan's `--dataset fake`, a small text corpus for word_language_model);
then the program runs with its own smallest options (`--dry-run`, `--epochs 1`, small sizes).
The report says which ran, and for one that did not, the last line of its error.
Exit status 0 when all ran.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_IMPORT = re.compile(r"^(?P<indent>\s*)import (?P<pkg>torchvision|torch)(?P<sub>(\.\w+)*)(?: as (?P<alias>\w+))?\s*$")
_FROM = re.compile(r"^(?P<indent>\s*)from (?P<pkg>torchvision|torch)(?P<sub>(\.\w+)*) import (?P<names>.+)$")


def rewrite_imports(source: str) -> str:
    """The program with each `import torch...` / `from torch... import` line (and torchvision's)
    importing Kinone's facade under the same names; every other line as it was."""
    return "".join(_rewrite_line(line) for line in source.splitlines(keepends=True))


def _rewrite_line(line: str) -> str:
    ending = "\n" if line.endswith("\n") else ""
    body = line.rstrip("\r\n")
    match = _FROM.match(body)
    if match:
        return f"{match['indent']}from kinone.{match['pkg']}{match['sub']} import {match['names']}{ending}"
    match = _IMPORT.match(body)
    if not match:
        return line
    pkg, sub, alias, indent = match["pkg"], match["sub"], match["alias"], match["indent"]
    if alias:  # import torch.nn as nn
        return f"{indent}import kinone.{pkg}{sub} as {alias}{ending}"
    if not sub:  # import torch
        return f"{indent}import kinone.{pkg} as {pkg}{ending}"
    # import torch.utils.data: binds `torch` after loading the submodule
    return f"{indent}import kinone.{pkg}{sub}, kinone.{pkg} as {pkg}{ending}"


# ----------------------------------------------------------------------------- generated data


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file (gzip-compressed when the name ends in .gz): magic, big-endian dims, data."""
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + np.asarray(array.shape, ">i4").tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as file:
        file.write(header + array.tobytes())


def make_mnist(root: Path, train: int, test: int, seed: int = 0) -> None:
    """MNIST's four raw files under `root/MNIST/raw`: 28x28 uint8 images whose bright block's
    place depends on the label (so a model can learn something), and uint8 labels 0-9."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", train), ("t10k", test)):
        labels = rng.integers(0, 10, count).astype(np.uint8)
        images = rng.integers(0, 64, (count, 28, 28)).astype(np.uint8)
        for image, label in zip(images, labels):
            row, col = divmod(int(label), 5)
            image[4 + 10 * row : 12 + 10 * row, 2 + 5 * col : 6 + 5 * col] = 255
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)


def make_corpus(folder: Path, words: int = 120, lines: int = (60, 20, 20), seed: int = 0) -> None:
    """train.txt, valid.txt and test.txt of short lines over a small vocabulary, as
    word_language_model's wikitext-2 folder."""
    rng = np.random.default_rng(seed)
    vocabulary = [f"w{i}" for i in range(words)]
    folder.mkdir(parents=True, exist_ok=True)
    for name, count in zip(("train", "valid", "test"), lines):
        text = "".join(" ".join(rng.choice(vocabulary, rng.integers(4, 12))) + " \n" for _ in range(count))
        (folder / f"{name}.txt").write_text(text, encoding="utf8")


# ----------------------------------------------------------------------------- the examples


@dataclass
class Example:
    name: str
    folder: str
    args: list[str]
    prepare: object = None  # callable(workdir: Path) -> None
    script: str = "main.py"
    notes: list[str] = field(default_factory=list)


def _mnist_data(workdir: Path) -> None:
    make_mnist(workdir / "data", train=256, test=256)


def _corpus(workdir: Path) -> None:
    make_corpus(workdir / "word_language_model" / "corpus")


EXAMPLES = [
    Example("mnist", "mnist", ["--dry-run", "--epochs", "1", "--no-accel"], _mnist_data),
    Example("vae", "vae", ["--epochs", "1", "--no-accel", "--batch-size", "128"], _mnist_data),
    Example(
        "dcgan",
        "dcgan",
        [
            "--dataset",
            "fake",
            "--dry-run",
            "--batchSize",
            "8",
            "--nz",
            "16",
            "--ngf",
            "8",
            "--ndf",
            "8",
            "--manualSeed",
            "1",
            "--outf",
            "out",
        ],
    ),
    Example("regression", "regression", []),
    Example(
        "word_language_model (LSTM)",
        "word_language_model",
        [
            "--data",
            "corpus",
            "--epochs",
            "1",
            "--dry-run",
            "--emsize",
            "16",
            "--nhid",
            "16",
            "--bptt",
            "8",
            "--batch_size",
            "4",
            "--save",
            "model.pt",
            "--use-optimizer",
            "--lr",
            "0.001",
        ],
        _corpus,
    ),
    Example(
        "word_language_model (Transformer)",
        "word_language_model",
        [
            "--data",
            "corpus",
            "--model",
            "Transformer",
            "--epochs",
            "1",
            "--dry-run",
            "--emsize",
            "16",
            "--nhid",
            "16",
            "--bptt",
            "8",
            "--batch_size",
            "4",
            "--save",
            "model.pt",
            "--use-optimizer",
            "--lr",
            "0.001",
        ],
        _corpus,
    ),
]


def copy_rewritten(source: Path, target: Path) -> int:
    """Copy the example folder (its .py files with their imports rewritten); the count of
    lines changed."""
    changed = 0
    shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("data", "__pycache__"))
    for path in target.rglob("*.py"):
        original = path.read_text(encoding="utf8")
        rewritten = rewrite_imports(original)
        changed += sum(a != b for a, b in zip(original.splitlines(), rewritten.splitlines()))
        path.write_text(rewritten, encoding="utf8")
    return changed


def run_example(example: Example, checkout: Path, workdir: Path, timeout: float) -> tuple[bool, str, float]:
    source = checkout / example.folder
    if not (source / example.script).is_file():
        return False, f"no {example.folder}/{example.script} in {checkout}", 0.0
    target = workdir / example.folder
    changed = copy_rewritten(source, target)
    if example.prepare is not None:
        example.prepare(workdir)
    command = [sys.executable, example.script, *example.args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    try:
        result = subprocess.run(
            command, cwd=target, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s", time.perf_counter() - start
    seconds = time.perf_counter() - start
    output = (result.stdout + result.stderr).strip().splitlines()
    log = workdir / f"{example.name.replace(' ', '_').replace('(', '').replace(')', '')}.log"
    log.write_text(
        f"$ {' '.join(command)}  (in {target}, {changed} import lines rewritten)\n" + result.stdout + result.stderr,
        encoding="utf8",
    )
    if result.returncode == 0:
        losses = [line for line in output if "loss" in line.lower()]
        return True, (losses[-1].strip() if losses else "ran") + f"  [log: {log}]", seconds
    return False, (output[-1].strip() if output else f"exit status {result.returncode}") + f"  [log: {log}]", seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", required=True, type=Path, help="a checkout of pytorch/examples")
    parser.add_argument("--only", nargs="*", help="run only these examples (by folder name)")
    parser.add_argument("--workdir", type=Path, help="where to copy and run them (default: a new temporary folder)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per example (default 600)")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kinone-pytorch-examples-"))
    workdir.mkdir(parents=True, exist_ok=True)
    chosen = [e for e in EXAMPLES if not args.only or e.folder in args.only or e.name in args.only]
    print(f"pytorch/examples at {args.examples}, run in {workdir}")
    failures = 0
    for example in chosen:
        ran, summary, seconds = run_example(example, args.examples, workdir, args.timeout)
        failures += not ran
        print(f"{'RUNS ' if ran else 'FAILS'} {example.name:<36} {seconds:6.1f} s  {summary}", flush=True)
    print(f"{len(chosen) - failures} of {len(chosen)} ran")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
