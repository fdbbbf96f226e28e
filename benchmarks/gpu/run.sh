#!/usr/bin/env bash
# One prepared command for a lent GPU machine (python3 with cupy-cuda13x, torch, torchvision,
# pytest and numpy; no internet): the GPU tests, then the training-step benchmark beside PyTorch.
# Under 8 minutes on one H200. From the repository root:  bash benchmarks/gpu/run.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
export PYTHONPATH="packages/kinone-autograd/src:packages/kinone-nn/src${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-/tmp}"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)"

echo "== GPU tests (every Function against the CPU, gradcheck in float64, model steps, determinism, files) =="
timeout 300 python3 -m pytest -q -m gpu tests/nn/test_gpu.py tests/nn/test_device_module_optim.py -p no:cacheprovider --timeout 120 2>&1 | tee "$OUT/gpu-tests.log"
tests=${PIPESTATUS[0]}

echo "== training steps at 224, Kinone beside PyTorch =="
timeout 240 python3 benchmarks/gpu/bench.py 2>&1 | tee "$OUT/gpu-bench.log"
bench=${PIPESTATUS[0]}
exit $(( tests != 0 || bench != 0 ))
