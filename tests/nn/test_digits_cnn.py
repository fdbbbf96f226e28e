"""A small CNN built from kinone.nn layers learns real handwritten digits.

Data: UCI "Optical Recognition of Handwritten Digits" (1,797 scanned 8x8 digits), shipped inside
scikit-learn as `load_digits` (no download). The model and loop are examples/digits_cnn.py.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_cnn.py"


def test_small_cnn_reaches_97_percent_on_held_out_digits():
    spec = importlib.util.spec_from_file_location("digits_cnn", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    accuracy = module.train(epochs=8, seed=0, verbose=False)
    assert accuracy >= 0.97, f"test accuracy {accuracy:.4f}"
