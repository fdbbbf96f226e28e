"""Group `autograd`: the engine's fixed cost per op, and a BLAS-bound MLP step.

Each build function receives `fw` (`kinone.autograd` or `torch`) and uses only what both
spell the same way: `fw.tensor`, `fw.arange`, `@ + * -`, `.tanh() .relu() .sum() .mean()
.log_softmax(dim)`, integer-array indexing, `.backward()` and `.grad`.
"""

from __future__ import annotations

import itertools

import numpy as np
from case import Case  # benchmarks/case.py: run.py puts its own folder on sys.path

CHAIN_LENGTH = 1000  # ops in the per-op chain's forward
CHAIN_WIDTH = 16

MLP_SIZES = (784, 1024, 1024, 10)
MLP_BATCH = 256


def per_op_chain(fw):
    """1,000 elementwise ops on a (16,) float32 tensor (mul, add, tanh, ...), forward + backward."""
    rng = np.random.default_rng(0)
    x = fw.tensor(rng.standard_normal(CHAIN_WIDTH).astype(np.float32))
    # w near 1 and b small keep the chain away from 0 and from tanh's flat tails: no denormals.
    w = fw.tensor((1 + 0.1 * rng.standard_normal(CHAIN_WIDTH)).astype(np.float32), requires_grad=True)
    b = fw.tensor((0.1 * rng.standard_normal(CHAIN_WIDTH)).astype(np.float32), requires_grad=True)

    def step():
        w.grad = None
        b.grad = None
        y = x
        for _ in range(CHAIN_LENGTH // 3):  # 333 rounds of three ops ...
            y = y * w
            y = y + b
            y = y.tanh()
        y = y * w  # ... and the 1,000th
        loss = y.sum()
        loss.backward()
        return loss

    return step


def mlp_784_1024_1024_10(fw):
    """MLP 784-1024-1024-10, batch 256, float32, ReLU, log-softmax NLL; forward + backward."""
    rng = np.random.default_rng(0)

    def weight(fan_in, fan_out):
        data = rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)
        return fw.tensor(data.astype(np.float32), requires_grad=True)

    def bias(size):
        return fw.tensor(np.zeros(size, dtype=np.float32), requires_grad=True)

    w1, w2, w3 = (weight(a, b) for a, b in itertools.pairwise(MLP_SIZES))
    b1, b2, b3 = (bias(size) for size in MLP_SIZES[1:])
    params = (w1, b1, w2, b2, w3, b3)
    x = fw.tensor(rng.standard_normal((MLP_BATCH, MLP_SIZES[0])).astype(np.float32))
    target = fw.tensor(rng.integers(0, MLP_SIZES[-1], MLP_BATCH))  # int64
    rows = fw.arange(MLP_BATCH)

    def step():
        for p in params:
            p.grad = None
        h = (x @ w1 + b1).relu()
        h = (h @ w2 + b2).relu()
        logits = h @ w3 + b3
        loss = -logits.log_softmax(1)[rows, target].mean()
        loss.backward()
        return loss

    return step


CASES = [
    Case("per_op_chain", per_op_chain, unit="us/op", count=CHAIN_LENGTH, target=2.0),
    Case("mlp_784_1024_1024_10", mlp_784_1024_1024_10, unit="ms/iter", target=1.3),
]
