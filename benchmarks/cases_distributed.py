"""Group `distributed`: a resnet18 training step, 2 MPI ranks x 1 thread against 1 process x 2 threads.

    python benchmarks/cases_distributed.py [--batch 16] [--size 64] [--steps 10] [--json OUT]

Not a `run.py` group: it launches `mpiexec` (next to this Python, or on PATH; `pip install
mpi4py mpich`) and compares configurations of Kinone with itself, not with PyTorch. Every
configuration computes the same global batch of 2·B images (B = --batch) per step:

- `1 rank x 2 threads`: one process, batch 2·B, OpenBLAS with 2 threads;
- `2 ranks x 1 thread`: `mpiexec -n 2`, batch B per rank, 1 thread each, gradients averaged
  with `kinone.distributed.DistributedOptimizer` (one Allreduce of ResNet-18's 46.8 MB);
- `2 ranks x 1 thread, reduced after backward`: the same with `gradients.OVERLAP = False`;
- `2 ranks x 1 thread, no reduction`: the ranks train apart, the baseline that holds what
  two processes cost each other on one machine (memory bandwidth), so that the step's
  difference to it is what the reduction costs;
- `1 rank x 1 thread, batch B` for reference: one rank's share of the work alone.

The step is what `cases_models.resnet18_train_step` times (zero_grad, forward in train mode,
cross-entropy, backward, SGD with momentum 0.9 and weight decay 1e-4, lr 0 so every step sees
the same weights). Reported per configuration, medians over --steps timed steps after 3 of
warm-up (per step, the slowest rank's time):

- `ms per global batch`: the whole step;
- `reducing ms (in backward + after)`: the time in the bucket reducer's hooks during
  backward (copying each finished gradient into its bucket, the Allreduces of full buckets)
  plus the time inside `allreduce_gradients` after backward, including waiting for the
  slower rank; and its share of the step (the target: at most 5%);
- `after backward ms`: the part inside `allreduce_gradients`;
- `plain reduction alone ms`: the reduction without hooks (pack, Allreduce, unpack), timed
  on its own after a barrier, for comparison.

On a shared machine the figures wander; run it when the machine is quiet, and for a
benchmark unset this machine's OpenBLAS tuning variables:
`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/cases_distributed.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
WARMUP_STEPS = 3
TIMEOUT_SECONDS = 900


# ---------------------------------------------------------------------------- rank side
def worker(batch: int, size: int, steps: int, reduction: str = "overlap") -> None:
    """Time the training step on every rank; rank 0 prints one JSON line. `reduction`:
    "overlap" (the default path), "after" (OVERLAP off: all of it after backward) or "none"
    (no reduction: what two processes cost each other by sharing the machine)."""
    import kinone.distributed as dist
    from kinone.nn.functional import cross_entropy
    from kinone.optim import SGD

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from cases_models import NUM_CLASSES, build_model

    import kinone.autograd as fw

    if dist.launched_under_mpi():
        dist.init()
    model = build_model(fw, "resnet18").train()
    optimizer = dist.DistributedOptimizer(SGD(model.parameters(), lr=0.0, momentum=0.9, weight_decay=1e-4))
    dist.broadcast_parameters(model)
    rng = np.random.default_rng(dist.rank())
    x = fw.tensor(rng.standard_normal((batch, 3, size, size)).astype(np.float32))
    target = fw.tensor(rng.integers(0, NUM_CLASSES, batch))
    params = optimizer.averaged_parameters
    from kinone.distributed import gradients

    gradients.OVERLAP = reduction == "overlap"
    reduce = dist.allreduce_gradients if reduction != "none" else (lambda parameters: None)

    def reducing_seconds() -> float:
        reducer = gradients._reducers.get(tuple(map(id, params)))
        return reducer.seconds if reducer is not None else 0.0

    def step() -> tuple[float, float, float]:
        start = time.perf_counter()
        optimizer.zero_grad()
        before = reducing_seconds()
        cross_entropy(model(x), target).backward()
        reduce_start = time.perf_counter()
        reduce(params)
        reduce_time = time.perf_counter() - reduce_start
        reducing = reducing_seconds() - before  # in backward's hooks and in allreduce_gradients
        optimizer.optimizer.step()
        return time.perf_counter() - start, reduce_time, reducing

    for _ in range(WARMUP_STEPS):
        step()
    dist.barrier()
    timings = np.array([step() for _ in range(steps)])  # (steps, 3): step, after backward, reducing in all
    alone = []
    gradients.OVERLAP = False  # the plain reduction alone (packing, Allreduce, unpacking)
    comm = dist.runtime.active_comm()
    for _ in range(steps):
        dist.barrier()
        start = time.perf_counter()
        if comm is not None:
            gradients._reduce_after_backward(comm, params)
        alone.append(time.perf_counter() - start)
    slowest = dist.all_gather(np.concatenate([timings, np.array(alone)[:, None]], axis=1)[None])
    slowest = slowest.max(axis=0)  # per step, the slowest rank
    if dist.is_main():
        gradient_mb = sum(p.data.nbytes for p in params) / 1e6
        print(
            json.dumps(
                {
                    "ranks": dist.world_size(),
                    "batch_per_rank": batch,
                    "gradient_mb": gradient_mb,
                    "step_ms": 1e3 * statistics.median(slowest[:, 0]),
                    "step_ms_min": 1e3 * slowest[:, 0].min(),
                    "allreduce_in_step_ms": 1e3 * statistics.median(slowest[:, 1]),
                    "reducing_ms": 1e3 * statistics.median(slowest[:, 2]),
                    "allreduce_alone_ms": 1e3 * statistics.median(slowest[:, 3]),
                }
            )
        )


# ---------------------------------------------------------------------------- parent side
def _mpiexec() -> str:
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if found is None:
        raise SystemExit("cases_distributed: no mpiexec next to this Python or on PATH (pip install mpi4py mpich)")
    return found


def run(ranks: int, threads: int, batch: int, size: int, steps: int, reduction: str = "overlap") -> dict:
    env = dict(os.environ, **{name: str(threads) for name in THREAD_VARIABLES})
    command = [sys.executable, str(Path(__file__).resolve()), "_worker", str(batch), str(size), str(steps), reduction]
    if ranks > 1:
        command = [_mpiexec(), "-n", str(ranks), *command]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False)
    if done.returncode != 0:
        raise SystemExit(f"cases_distributed: {ranks} rank(s) failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16, help="images per rank in the 2-rank run (global batch: twice)")
    parser.add_argument("--size", type=int, default=64, help="image height and width")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    configurations = [
        ("1 rank x 2 threads", 1, 2, 2 * args.batch, "overlap"),
        ("2 ranks x 1 thread", 2, 1, args.batch, "overlap"),
        ("2 ranks x 1 thread, reduced after backward", 2, 1, args.batch, "after"),
        ("2 ranks x 1 thread, no reduction (baseline)", 2, 1, args.batch, "none"),
        (f"1 rank x 1 thread, batch {args.batch} (one rank's share alone)", 1, 1, args.batch, "overlap"),
    ]
    results = {}
    for name, ranks, threads, batch, reduction in configurations:
        print(f"  {name} ...", file=sys.stderr, flush=True)
        results[name] = run(ranks, threads, batch, args.size, args.steps, reduction)

    print(
        f"resnet18 training step, global batch {2 * args.batch} at {args.size}x{args.size}, "
        f"{args.steps} steps, medians (min)\n"
    )
    print(
        "| configuration | ms per step | reducing ms (in backward + after) | after backward ms | "
        "plain reduction alone ms | reducing share of the step |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        share = r["reducing_ms"] / r["step_ms"] if r["ranks"] > 1 else 0.0
        print(
            f"| {name} | {r['step_ms']:.0f} ({r['step_ms_min']:.0f}) | {r['reducing_ms']:.1f} | "
            f"{r['allreduce_in_step_ms']:.1f} | {r['allreduce_alone_ms']:.1f} | {100 * share:.1f}% |"
        )
    one, two = results["1 rank x 2 threads"], results["2 ranks x 1 thread"]
    after, baseline = results[configurations[2][0]], results[configurations[3][0]]
    for name, r in (("overlapped", two), ("after backward", after)):
        cost = r["step_ms"] - baseline["step_ms"]
        print(
            f"\nthe reduction {name}: {cost:+.1f} ms per step against 2 ranks without reduction, "
            f"{100 * cost / r['step_ms']:.1f}% of the step (the target: <= 5%)"
        )
    print(
        f"\n2 ranks x 1 thread / 1 rank x 2 threads: {two['step_ms'] / one['step_ms']:.2f}x the time per global batch; "
        f"gradients {two['gradient_mb']:.1f} MB"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        worker(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), *sys.argv[5:6])
    else:
        main()
