"""Shared helpers of the kinone-onnx tests, as fixtures (tests import no sibling modules)."""

from __future__ import annotations

import numpy as np
import pytest

from kinone.autograd import Tensor, no_grad


def calibrate(model, x: Tensor):
    """Give every batch norm the statistics of `x`'s activations (one training-mode forward
    with momentum 1, variances at least 0.05), so that eval-mode outputs are O(1) rather than
    vanishing with depth: a comparison of tiny numbers would prove nothing."""
    norms = [m for m in model.modules() if hasattr(m, "running_var") and hasattr(m, "momentum")]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 1.0
    model.train()
    with no_grad():
        model(x)
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
        # A channel that is constant on the calibration batch (a unit that never fires) would
        # be divided by sqrt(eps): its noise would dominate the logits.
        np.maximum(m.running_var.data, 0.05, out=m.running_var.data)
    model.eval()
    return model


@pytest.fixture
def calibrated():
    return calibrate


@pytest.fixture
def rng():
    return np.random.default_rng(0)
