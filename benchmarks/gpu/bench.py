"""Training-step throughput on one GPU, Kinone (CuPy) beside PyTorch, in one run.

    python3 benchmarks/gpu/bench.py            # on a GPU machine (benchmarks/gpu/run.sh calls it)
    python3 benchmarks/gpu/bench.py --standin  # a dry run on the CPU's stand-in device, tiny sizes

Prints a table of images/s for ResNet-18 (batch 256) and EfficientNet-B0 (batch 128) at
224x224, fp32 and TF32, for both frameworks, and Kinone's per-op overhead on the device
(a chain of tiny ops, forward and backward). Each figure: the median of `--repeat` timed
steps after `--warmup` steps, the device synchronized around every timed step.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
for package in ("kinone-autograd", "kinone-nn"):
    sys.path.insert(0, str(ROOT / "packages" / package / "src"))

CASES = [("resnet18", 256), ("efficientnet_b0", 128)]


def _sync(xp):
    if (
        xp is not None
        and hasattr(xp, "cuda")
        and hasattr(xp.cuda, "Stream")
        and hasattr(xp.cuda.Stream, "null")
        and xp.cuda.Stream.null is not None
    ):
        xp.cuda.Stream.null.synchronize()


def _median_time(step, sync, warmup: int, repeat: int) -> float:
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def kinone_step(name: str, batch: int, size: int, tf32: bool):
    from kinone import models, optim
    from kinone.autograd import Tensor, cuda, manual_seed
    from kinone.nn import functional as F

    cuda.set_allow_tf32(tf32)
    manual_seed(0)
    model = models.get_model(name, num_classes=14).to("cuda")
    optimizer = optim.SGD(model.parameters(), lr=0.0, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((batch, 3, size, size)).astype(np.float32)).cuda()
    y = Tensor((rng.random((batch, 14)) < 0.3).astype(np.float32)).cuda()

    def step():
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def torch_step(name: str, batch: int, size: int, tf32: bool):
    import torch
    import torchvision

    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(num_classes=14).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch, 3, size, size, device="cuda")
    y = (torch.rand(batch, 14, device="cuda") < 0.3).float()

    def step():
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def per_op_overhead(ops: int, repeat: int, sync) -> float:
    from kinone.autograd import ones

    x = ones(16, device="cuda", requires_grad=True)  # a leaf on the device

    def chain():
        y = x
        for _ in range(ops // 2):
            y = y * 1.0001 + 0.0001
        y.sum().backward()

    return _median_time(chain, sync, 2, repeat) / ops * 1e6


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--standin", action="store_true", help="dry run on the stand-in device (no GPU needed)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args(argv)

    from kinone.autograd import backend

    context = backend.use_standin_cuda() if args.standin else contextlib.nullcontext()
    cases = [(name, 2) for name, _ in CASES] if args.standin else CASES
    size = 32 if args.standin else args.size
    with context:
        xp = backend.cuda_module()
        sync = (lambda: None) if args.standin else (lambda: _sync(xp))
        rows = []
        for name, batch in cases:
            for tf32 in (False, True):
                row = {"model": name, "batch": batch, "precision": "tf32" if tf32 else "fp32"}
                for framework, build in (("kinone", kinone_step), ("torch", torch_step)):
                    if framework == "torch" and args.standin:
                        row[framework] = float("nan")
                        continue
                    try:
                        seconds = _median_time(build(name, batch, size, tf32), sync, args.warmup, args.repeat)
                        row[framework] = batch / seconds
                    except Exception as error:  # report and go on: one failure must not hide the rest
                        print(f"{framework} {name} {row['precision']}: {type(error).__name__}: {error}", flush=True)
                        row[framework] = float("nan")
                rows.append(row)
                print(
                    f"{name:<16} batch {batch:<4} {row['precision']}: kinone {row['kinone']:8.1f} img/s   "
                    f"torch {row['torch']:8.1f} img/s   ratio {row['kinone'] / row['torch']:.3f}",
                    flush=True,
                )
        overhead = per_op_overhead(200 if args.standin else 2000, 3 if args.standin else args.repeat, sync)
    print()
    print("| model | batch | precision | Kinone img/s | PyTorch img/s | Kinone / PyTorch |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row['model']} | {row['batch']} | {row['precision']} | {row['kinone']:.1f} | {row['torch']:.1f} | "
            f"{row['kinone'] / row['torch']:.3f} |"
        )
    print(f"\nKinone per-op overhead on the device (tiny mul/add chain, forward + backward): {overhead:.1f} us/op")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
