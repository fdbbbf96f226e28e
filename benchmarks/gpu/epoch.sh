#!/usr/bin/env bash
# The real job's throughput on a lent GPU machine (16 cores): a synthetic NIH sample at the real
# 1024x1024 size, prepared once into a cache at 256, then one epoch of
# `kinone-train --device cuda --cache` with ResNet-18 at 224; prints the epoch time and projects
# it onto the real 86,524-image train/val split. About 5 minutes. From the repository root:
#   bash benchmarks/gpu/epoch.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
export PYTHONPATH="packages/kinone-autograd/src:packages/kinone-nn/src:packages/kinone-data/src${PYTHONPATH:+:$PYTHONPATH}"
WORK="${WORK:-/tmp/kinone-epoch}"
mkdir -p "$WORK"

python3 - "$WORK/nih" <<'PY'
import sys, time
from kinone.data.datasets.nih import make_sample
start = time.perf_counter()
make_sample(sys.argv[1], n_patients=1000, image_size=1024, workers=16, draw_size=256, progress=False)
print(f"sample written in {time.perf_counter() - start:.0f} s")
PY
start=$(date +%s)
python3 -m kinone.data.prepare_cli --data-dir "$WORK/nih" --out "$WORK/cache" --image-size 256 --workers 16
echo "prepared in $(( $(date +%s) - start )) s"

start=$(date +%s.%N)
python3 -m kinone.data.train_cli --data-dir "$WORK/nih" --cache "$WORK/cache" --device cuda --tf32 \
    --model resnet18 --image-size 224 --epochs 1 --batch-size 256 --num-workers 12 --no-progress \
    --run-dir "$WORK/run" --overwrite | tee "$WORK/train.log"
seconds=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
python3 - "$WORK/run" "$seconds" <<'PY'
import json, sys
from pathlib import Path
run, seconds = Path(sys.argv[1]), float(sys.argv[2])
config = json.loads((run / "run.json").read_text())["config"]
images = config["train_images"] + config["val_images"] + config["test_images"]
train = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if '"split": "train"' in l]
wait = sum(r.get("data_time", 0) for r in train); step = sum(r.get("step_time", 0) for r in train)
print(f"one epoch of {config['train_images']} train images (+ validation and test, {images} in all): {seconds:.1f} s "
      f"end to end; in the training loop {step:.1f} s computing and {wait:.1f} s waiting for data")
rate = config["train_images"] / max(step + wait, 1e-9)
print(f"projected training epoch on the real 86,524-image train/val split: {86524 / rate / 60:.1f} min at {rate:.0f} img/s")
PY
