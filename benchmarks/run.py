"""Benchmark Kinone against PyTorch CPU on this machine, in the same run.

    python benchmarks/run.py autograd [--repeat N] [--case NAME] [--json OUT]

Every (case, framework) pair runs in a fresh child process, so that its peak memory is its
own and one framework's thread pools or allocator state cannot touch the other's. Children
are pinned to THREADS threads (OMP/OpenBLAS/MKL environment variables, and
`torch.set_num_threads`). Kinone always runs; PyTorch runs when `import torch` works,
otherwise its columns read n/a.

In a child: import the framework and run a tiny graph through it (one-time initialization),
build the case (inputs, parameters), collect garbage, read the resident set (VmRSS) as the
baseline and reset the kernel's peak counter (VmHWM); warm up; then take `repeat` samples,
each the mean of enough steps to last about SAMPLE_SECONDS. Reported: the median and minimum
over samples, and peak memory = VmHWM - baseline, i.e. the most memory the warm-up and
measured steps held at once beyond the inputs and parameters (graph, saved activations,
gradients, allocator and BLAS workspaces).

Groups of cases live in their own modules (GROUPS maps a group's name to its module); a
module exposes `CASES`, a list of `case.Case`.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from case import Case

GROUPS = {
    "autograd": "cases_autograd",
    "conv": "cases_conv",
    "norm_loss": "cases_norm_loss",
    "models": "cases_models",
    "data": "cases_data",
}
FRAMEWORKS = ("kinone", "torch")
THREADS = 2
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

WARMUP_SECONDS = 0.5  # and at least WARMUP_STEPS steps
WARMUP_STEPS = 3
SAMPLE_SECONDS = 0.2
CHILD_TIMEOUT_SECONDS = 300


def load_cases(group: str) -> list[Case]:
    return importlib.import_module(GROUPS[group]).CASES


# ---------------------------------------------------------------------------- child side
def load_framework(name: str):
    """Import the framework a child measures; return (namespace, version/BLAS info)."""
    if name == "kinone":
        import numpy as np

        import kinone.autograd as fw

        return fw, {"version": fw.__version__, "numpy": np.__version__, "blas": numpy_blas()}
    if name == "torch":
        import torch

        torch.set_num_threads(THREADS)
        blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
        return torch, {
            "version": torch.__version__,
            "blas": f"{blas.group(1) if blas else 'unknown'}, {torch.get_num_threads()} threads",
        }
    raise ValueError(f"unknown framework {name!r}; expected one of {FRAMEWORKS}")


def warm_up_framework(fw) -> None:
    """Run a tiny graph once, before the baseline is read, so that the framework's one-time
    initialization (PyTorch's autograd engine and thread pools: about 5 MiB) is not charged
    to the case's peak memory."""
    import numpy as np

    a = fw.tensor(np.eye(2, dtype=np.float32), requires_grad=True)
    index = fw.arange(2)
    ((a @ a).relu().tanh() * a + a).log_softmax(1)[index, index].sum().backward()


def numpy_blas() -> str:
    """NumPy's BLAS library, version, kernel set and thread count, as far as can be told."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        for pool in threadpool_info():
            if pool["user_api"] == "blas":
                parts = [f"{pool['internal_api']} {pool.get('version') or ''}".strip()]
                if pool.get("architecture"):
                    parts.append(f"{pool['architecture']} kernels")
                parts.append(f"{pool['num_threads']} threads")
                return ", ".join(parts)
    import numpy as np

    try:  # NumPy >= 1.25 without threadpoolctl: the build-time record
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', 'unknown')} {blas.get('version', '')}".strip()
    except Exception:
        return "unknown"


def memory_kib(field: str) -> int:
    """A VmRSS/VmHWM figure of this process, in KiB (Linux /proc)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak_memory() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def measure(group: str, case_name: str, framework: str, repeat: int) -> dict:
    """Run one case on one framework in this (fresh) process; return the figures."""
    fw, info = load_framework(framework)
    warm_up_framework(fw)
    case = next(c for c in load_cases(group) if c.name == case_name)
    step = case.build(fw)
    gc.collect()
    try:
        baseline_kib = memory_kib("VmRSS")
        exact_peak = reset_peak_memory()
    except (OSError, KeyError):  # no /proc: fall back to the whole-process peak
        baseline_kib, exact_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, False

    warmup_times = []
    warmup_start = time.perf_counter()
    while len(warmup_times) < WARMUP_STEPS or time.perf_counter() - warmup_start < WARMUP_SECONDS:
        start = time.perf_counter()
        loss = step()
        warmup_times.append(time.perf_counter() - start)
    steps_per_sample = max(1, round(SAMPLE_SECONDS / statistics.median(warmup_times)))

    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(steps_per_sample):
            step()
        samples.append((time.perf_counter() - start) / steps_per_sample)

    # ru_maxrss is in KiB on Linux; it includes whatever imports and setup peaked at.
    peak_kib = memory_kib("VmHWM") if exact_peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "median": case.per_unit(statistics.median(samples)),
        "min": case.per_unit(min(samples)),
        "samples": [case.per_unit(s) for s in samples],
        "steps_per_sample": steps_per_sample,
        "peak_mib": max(0, peak_kib - baseline_kib) / 1024,
        "baseline_mib": baseline_kib / 1024,
        "peak_method": "VmHWM after reset - VmRSS" if exact_peak else "ru_maxrss - VmRSS",
        "loss": float(loss),
        "info": info,
    }


# ---------------------------------------------------------------------------- parent side
def child_environment() -> dict:
    env = dict(os.environ)
    env.update({name: str(THREADS) for name in THREAD_VARIABLES})
    return env


def run_child(group: str, case: Case, framework: str, repeat: int) -> dict:
    """Measure one (case, framework) in a fresh interpreter; {'error': ...} if it failed."""
    command = [sys.executable, str(Path(__file__).resolve()), "_child", group, case.name, framework, str(repeat)]
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command, env=child_environment(), check=False, capture_output=True, text=True, timeout=CHILD_TIMEOUT_SECONDS
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {CHILD_TIMEOUT_SECONDS} s"}
    print(f"  {group}/{case.name} on {framework}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {done.returncode}", "stderr": done.stderr}
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_busy_seconds() -> float:
    """CPU seconds spent by everything on this machine so far (user + system, all cores)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return float("nan")
    user, nice, system, irq, softirq, steal = (fields[i] for i in (0, 1, 2, 5, 6, 7))
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds spent by this process and its finished children."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )


def machine_info() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "threads": THREADS,
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }


def format_time(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def format_ratio(numerator, denominator) -> str:
    return f"{numerator / denominator:.2f}x" if numerator is not None and denominator else "n/a"


def table(rows: list[dict]) -> str:
    """A Markdown table: readable in a terminal and pasted as is into the README."""
    header = [
        "case",
        "unit",
        "kinone",
        "torch",
        "ratio",
        "ratio of mins",
        "target",
        "kinone peak MiB",
        "torch peak MiB",
        "mem ratio",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    for row in rows:
        k, t, case = row["kinone"], row["torch"], row["case"]
        k_time = k.get("median") if "error" not in k else None
        t_time = t.get("median") if t and "error" not in t else None
        k_mem = k.get("peak_mib") if k_time is not None else None
        t_mem = t.get("peak_mib") if t_time is not None else None
        cells = [
            f"{row['group']}/{case.name}",
            case.unit,
            f"{format_time(k_time)} (min {format_time(k['min'])})" if k_time is not None else "error",
            f"{format_time(t_time)} (min {format_time(t['min'])})" if t_time is not None else "n/a",
            format_ratio(k_time, t_time),
            format_ratio(k["min"], t["min"]) if t_time is not None and k_time is not None else "n/a",
            f"<= {case.target}x" if case.target else "",
            f"{k_mem:.1f}" if k_mem is not None else "n/a",
            f"{t_mem:.1f}" if t_mem is not None else "n/a",
            format_ratio(k_mem, t_mem) if t_mem is not None and t_mem >= 0.1 else "n/a",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("groups", nargs="+", choices=sorted(GROUPS), help="case groups to run")
    parser.add_argument("--repeat", type=int, default=10, help="timed samples per case (default 10)")
    parser.add_argument("--case", action="append", help="run only this case (repeatable)")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    torch_available = importlib.util.find_spec("torch") is not None
    if not torch_available:
        print("torch is not importable here: its columns read n/a", file=sys.stderr)
    rows = []
    # Other work on the machine (CPU time not spent by us or our children) makes figures noisy:
    # measure it over the run and report it with the table.
    run_start, busy_start, own_start = time.perf_counter(), cpu_busy_seconds(), own_cpu_seconds()
    for group in dict.fromkeys(args.groups):
        for case in load_cases(group):
            if args.case and case.name not in args.case:
                continue
            kinone = run_child(group, case, "kinone", args.repeat)
            torch = run_child(group, case, "torch", args.repeat) if torch_available else None
            rows.append({"group": group, "case": case, "kinone": kinone, "torch": torch})
    if not rows:
        parser.error(f"no case matches {args.case}")

    machine = machine_info()
    run_seconds = time.perf_counter() - run_start
    outside = (cpu_busy_seconds() - busy_start - (own_cpu_seconds() - own_start)) / run_seconds
    machine["outside_load_cores"] = round(max(0.0, outside), 2)
    infos = {name: next((r[name]["info"] for r in rows if r[name] and "info" in r[name]), None) for name in FRAMEWORKS}
    print(
        f"CPU: {machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} usable); {THREADS} threads per run"
    )
    print(f"OS: {machine['os']}; Python: {machine['python']}")
    print(
        f"Other work on the machine during the run: {machine['outside_load_cores']:.2f} cores busy"
        + (" (figures are noisier: compare the min columns)" if outside > 0.1 else "")
    )
    if infos["kinone"]:
        k = infos["kinone"]
        print(f"kinone-autograd {k['version']}; NumPy {k['numpy']} ({k['blas']})")
    print(f"torch {infos['torch']['version']} ({infos['torch']['blas']})" if infos["torch"] else "torch: n/a")
    print()
    print(table(rows))
    print()
    print("Times: median over samples (min in brackets). ratio = kinone / torch medians; lower is better.")
    print("Peak MiB: the most memory a run held beyond its inputs and parameters (see README).")

    for row in rows:
        for name in FRAMEWORKS:
            result = row[name]
            if result and "error" in result:
                print(f"{row['group']}/{row['case'].name} on {name} failed: {result['error']}", file=sys.stderr)
        k, t = row["kinone"], row["torch"]
        if "loss" in k and t and "loss" in t and abs(k["loss"] - t["loss"]) > 1e-3 * max(1.0, abs(t["loss"])):
            print(f"warning: {row['case'].name}: losses differ (kinone {k['loss']:.6g}, torch {t['loss']:.6g})")

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "machine": machine,
            "frameworks": infos,
            "repeat": args.repeat,
            "results": [
                {
                    "group": r["group"],
                    "case": r["case"].name,
                    "unit": r["case"].unit,
                    "target": r["case"].target,
                    "kinone": r["kinone"],
                    "torch": r["torch"],
                }
                for r in rows
            ],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0 if all("error" not in r["kinone"] for r in rows) else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        # Internal: `run.py _child GROUP CASE FRAMEWORK REPEAT` prints one JSON line.
        group, case_name, framework, repeat = sys.argv[2:6]
        print(json.dumps(measure(group, case_name, framework, int(repeat))))
        sys.exit(0)
    sys.exit(main())
