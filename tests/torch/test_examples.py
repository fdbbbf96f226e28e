"""pytorch/examples' mnist, vae, dcgan, regression and word_language_model, as short programs
in their style (examples_programs.py, written once against `torch`/`nn`/`F`/`optim`), run in
Kinone through kinone.torch; where PyTorch is installed, run in both from the same initial
weights (PyTorch's, copied by state-dict key) and the same generated batches and random draws,
with dropout off, and their per-step losses compared (float32).

The tolerance: in float32, the losses of three to five steps agree to 3e-7 relative at worst
on this machine (the worst seen is written beside each assertion; the VAE's and the GRU's are
bit-equal); the assertions ask for 1e-5.

tools/run_pytorch_examples.py runs the examples themselves (imports changed only) when
KINONE_PYTORCH_EXAMPLES names a checkout of pytorch/examples.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location(
    "kinone_torch_examples_programs", Path(__file__).with_name("examples_programs.py")
)
programs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(programs)

TOOL = Path(__file__).resolve().parents[2] / "packages" / "kinone-torch" / "tools" / "run_pytorch_examples.py"


@pytest.fixture(scope="module")
def kinone():
    return programs.kinone_api()


@pytest.fixture(scope="module")
def torch_api():
    pytest.importorskip("torch")
    return programs.torch_api()


def mnist_batches(steps=3, batch=8, seed=0):
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(0.0, 1.0, (batch, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, batch)) for _ in range(steps)
    ]


def assert_losses_close(ours, theirs, rtol, atol=0.0):
    np.testing.assert_allclose(np.asarray(ours, np.float64), np.asarray(theirs, np.float64), rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------- mnist


def test_mnist_trains_in_kinone(kinone):
    losses, _, (test_loss, correct) = programs.mnist(kinone, mnist_batches(steps=2), dropout=True)
    assert len(losses) == 2 and np.isfinite(losses).all() and np.isfinite(test_loss) and 0 <= correct <= 16


def test_mnist_matches_pytorch(kinone, torch_api):
    batches = mnist_batches()
    theirs, state, (their_test, their_correct) = programs.mnist(torch_api, batches, dropout=False)
    ours, _, (our_test, our_correct) = programs.mnist(kinone, batches, state=state, dropout=False)
    assert_losses_close(ours, theirs, rtol=1e-5)  # seen: 1e-7 relative
    assert_losses_close([our_test], [their_test], rtol=1e-5)
    assert our_correct == their_correct


# ----------------------------------------------------------------------------- vae


def vae_batches(steps=3, batch=16, seed=1):
    rng = np.random.default_rng(seed)
    images = [rng.uniform(0.0, 1.0, (batch, 1, 28, 28)).astype(np.float32) for _ in range(steps)]
    noises = [rng.normal(0.0, 1.0, (batch, 20)).astype(np.float32) for _ in range(steps + 1)]
    return images, noises


def test_vae_trains_in_kinone_and_saves_its_grid(kinone, tmp_path):
    from PIL import Image

    from kinone.torchvision.utils import save_image

    images, _ = vae_batches(steps=2)
    save_image.path = tmp_path / "reconstruction_1.png"  # where the program's test step writes
    try:
        losses, _ = programs.vae(kinone, images, save_image=save_image)
    finally:
        del save_image.path
    assert np.isfinite(losses).all()
    with Image.open(tmp_path / "reconstruction_1.png") as grid:  # 2 rows of 8 images, 2 px padding
        assert grid.size == (8 * 30 + 2, 2 * 30 + 2) and grid.mode == "RGB"


def test_vae_matches_pytorch(kinone, torch_api):
    images, noises = vae_batches()
    theirs, state = programs.vae(torch_api, images, noises=noises)
    ours, _ = programs.vae(kinone, images, state=state, noises=noises)
    assert_losses_close(ours, theirs, rtol=1e-5)  # seen: 0 (bit-equal)


# ----------------------------------------------------------------------------- dcgan


def dcgan_batches(steps=3, batch=4, nz=16, seed=2):
    rng = np.random.default_rng(seed)
    reals = [rng.uniform(-1.0, 1.0, (batch, 3, 64, 64)).astype(np.float32) for _ in range(steps)]
    noises = [rng.normal(0.0, 1.0, (batch, nz, 1, 1)).astype(np.float32) for _ in range(steps)]
    return reals, noises


def test_dcgan_trains_in_kinone(kinone):
    reals, noises = dcgan_batches(steps=2)
    losses, (generator, discriminator) = programs.dcgan(kinone, reals, noises)
    assert np.isfinite(losses).all() and all(0 < d < 1 for step in losses for d in step[2:])
    assert "main.0.weight" in generator and "main.3.running_var" in discriminator


def test_dcgan_matches_pytorch(kinone, torch_api):
    reals, noises = dcgan_batches()
    theirs, states = programs.dcgan(torch_api, reals, noises)
    ours, _ = programs.dcgan(kinone, reals, noises, states=states)
    assert_losses_close(ours, theirs, rtol=1e-5, atol=1e-6)  # (errD, errG, D(x), D(G(z)) x2) per step; seen: 3e-7


# ----------------------------------------------------------------------------- regression


def regression_draws(steps=5, seed=3):
    rng = np.random.default_rng(seed)
    W_target = (rng.normal(size=(4, 1)) * 5).astype(np.float32)
    b_target = (rng.normal(size=1) * 5).astype(np.float32)
    return [rng.normal(size=32).astype(np.float32) for _ in range(steps)], W_target, b_target


def test_regression_learns_in_kinone(kinone):
    xs, W_target, b_target = regression_draws(steps=200)
    losses, _ = programs.regression(kinone, xs, W_target, b_target)
    assert losses[-1] < losses[0] / 10


def test_regression_matches_pytorch(kinone, torch_api):
    xs, W_target, b_target = regression_draws()
    theirs, state = programs.regression(torch_api, xs, W_target, b_target)
    ours, _ = programs.regression(kinone, xs, W_target, b_target, state=state)
    assert_losses_close(ours, theirs, rtol=1e-5)  # seen: 1.2e-7 relative


# ----------------------------------------------------------------------------- word_language_model


def corpus_ids(tokens=120, ntokens=30, seed=4):
    return np.random.default_rng(seed).integers(0, ntokens, tokens)


@pytest.mark.parametrize("model_type", ["LSTM", "GRU", "RNN_TANH", "Transformer"])
def test_word_language_model_trains_in_kinone(kinone, model_type):
    losses, initial = programs.word_language_model(kinone, corpus_ids(), model_type, dropout=0.2)
    assert len(losses) == 3 and np.isfinite(losses).all()
    assert ("input_emb.weight" if model_type == "Transformer" else "encoder.weight") in initial


def _clip(kinone):
    """0.25 (the example's) where Kinone has torch.nn.utils.clip_grad_norm_; else no clipping in
    either framework, so that both compute the same."""
    return 0.25 if hasattr(getattr(kinone.nn, "utils", None), "clip_grad_norm_") else None


@pytest.mark.parametrize(
    "model_type, use_optimizer",
    [("LSTM", False), ("GRU", False), ("RNN_TANH", False), ("Transformer", False), ("LSTM", True)],
)
def test_word_language_model_matches_pytorch(kinone, torch_api, model_type, use_optimizer):
    ids = corpus_ids()
    lr = 0.001 if use_optimizer else 1.0
    options = {"model_type": model_type, "lr": lr, "clip": _clip(kinone), "use_optimizer": use_optimizer}
    theirs, state = programs.word_language_model(torch_api, ids, **options)
    ours, _ = programs.word_language_model(kinone, ids, state=state, **options)
    assert_losses_close(ours, theirs, rtol=1e-5)  # seen: 1.4e-7 relative


# ----------------------------------------------------------------------------- the examples themselves


@pytest.mark.skipif(
    not os.environ.get("KINONE_PYTORCH_EXAMPLES"),
    reason="set KINONE_PYTORCH_EXAMPLES to a checkout of pytorch/examples to run its programs",
)
def test_the_pytorch_examples_run_with_only_their_imports_changed(tmp_path):
    result = subprocess.run(
        [sys.executable, str(TOOL), "--examples", os.environ["KINONE_PYTORCH_EXAMPLES"], "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
