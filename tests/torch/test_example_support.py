"""What pytorch/examples import beyond tensors and layers: torchvision.utils (make_grid,
save_image), torch.onnx, torch.nn.parallel, torch.backends.cudnn, torch.serialization's
safe_globals; and tools/run_pytorch_examples.py's import rewriting and its run on a small
stand-in checkout."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kinone.torch as torch
from kinone import nn

TOOL = Path(__file__).resolve().parents[2] / "packages" / "kinone-torch" / "tools" / "run_pytorch_examples.py"


def _tool():
    """The tool as a module (registered in sys.modules: its dataclasses look themselves up there)."""
    if "run_pytorch_examples" not in sys.modules:
        spec = importlib.util.spec_from_file_location("run_pytorch_examples", TOOL)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["run_pytorch_examples"]


# ----------------------------------------------------------------------------- torchvision.utils


def test_make_grid_lays_out_rows_with_padding():
    from kinone.torchvision.utils import make_grid

    images = np.stack([np.full((1, 2, 3), i, np.float32) for i in range(5)])  # five 2x3 one-channel images
    grid = make_grid(torch.tensor(images), nrow=3, padding=1, pad_value=-1.0)
    assert isinstance(grid, torch.Tensor) and grid.shape == (3, 2 * 3 + 1, 3 * 4 + 1)  # 2 rows of 3, channels x3
    g = grid.numpy()
    assert (g[:, 1:3, 1:4] == 0).all() and (g[:, 1:3, 5:8] == 1).all() and (g[:, 4:6, 5:8] == 4).all()
    assert (g[:, 4:6, 9:12] == -1).all() and (g[:, 0, :] == -1).all()  # the missing sixth cell, the border


def test_make_grid_normalizes_over_the_batch_or_each_image():
    from kinone.torchvision.utils import make_grid

    images = np.stack([np.array([[[0.0, 2.0]]], np.float32), np.array([[[2.0, 4.0]]], np.float32)])
    together = make_grid(images, nrow=2, padding=0, normalize=True).numpy()[0]
    np.testing.assert_allclose(together, [[0.0, 0.5, 0.5, 1.0]])
    each = make_grid(images, nrow=2, padding=0, normalize=True, scale_each=True).numpy()[0]
    np.testing.assert_allclose(each, [[0.0, 1.0, 0.0, 1.0]])
    clipped = make_grid(images, nrow=2, padding=0, normalize=True, value_range=(1.0, 3.0)).numpy()[0]
    np.testing.assert_allclose(clipped, [[0.0, 0.5, 0.5, 1.0]])
    single = make_grid(np.ones((1, 3, 2, 2), np.float32), padding=5)
    assert single.shape == (3, 2, 2)  # one image: no padding, as torchvision
    with pytest.raises(ValueError, match=r"make_grid: expected \(B, C, H, W\)"):
        make_grid(np.ones((1, 1, 1, 2, 2), np.float32))


def test_save_image_writes_the_grid_as_8_bit_pixels(tmp_path):
    from PIL import Image

    from kinone.torchvision.utils import save_image

    images = torch.tensor(np.array([[[[0.0, 0.5], [1.0, 2.0]]]], np.float32))
    save_image(images, tmp_path / "x.png")
    with Image.open(tmp_path / "x.png") as image:
        pixels = np.asarray(image)
    assert pixels.shape == (2, 2, 3) and pixels[..., 0].tolist() == [[0, 128], [255, 255]]
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]  # no temporary file left
    with pytest.raises(ValueError, match="unknown image extension"):
        save_image(images, tmp_path / "x.unknown")
    with pytest.raises(TypeError, match="give a file path"):
        save_image(images, object())


# ----------------------------------------------------------------------------- torch.* modules


def test_the_modules_examples_import_exist():
    for name in (
        "kinone.torch.onnx",
        "kinone.torch.nn.parallel",
        "kinone.torch.backends.cudnn",
        "kinone.torch.backends.mps",
        "kinone.torch.serialization",
        "kinone.torchvision.utils",
    ):
        importlib.import_module(name)
    import kinone.torch.backends.cudnn as cudnn

    cudnn.benchmark = True  # dcgan/main.py
    assert cudnn.is_available() is False and torch.backends.cudnn is cudnn
    assert torch.backends.mps.is_available() is False and torch.backends.mps.is_built() is False


def test_onnx_export_refuses_naming_kinone_onnx(tmp_path):
    with pytest.raises(
        NotImplementedError, match=r"kinone.torch.onnx.export: .*kinone.onnx.export\(model, example_input"
    ):
        torch.onnx.export(nn.Linear(2, 2), (torch.ones(1, 2),), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_data_parallel_runs_on_one_device_and_refuses_several():
    parallel = importlib.import_module("kinone.torch.nn.parallel")
    layer = nn.Linear(3, 2)
    x = torch.ones(4, 3)
    np.testing.assert_array_equal(parallel.data_parallel(layer, x, range(1)).numpy(), layer(x).numpy())
    with pytest.raises(NotImplementedError, match="2 devices asked; .*kinone.distributed"):
        parallel.data_parallel(layer, x, range(2))
    with pytest.raises(NotImplementedError, match="DataParallel: .*kinone.distributed"):
        parallel.DataParallel(layer)


def test_safe_globals_is_kept_and_restored():
    from kinone.torch import serialization

    before = serialization.get_safe_globals()
    with serialization.safe_globals([nn.Linear, nn.LSTM]):
        assert serialization.get_safe_globals()[-2:] == [nn.Linear, nn.LSTM]
    assert serialization.get_safe_globals() == before


def test_saving_a_module_to_a_file_object_writes_nothing_when_refused(tmp_path):
    model = nn.Linear(2, 2)
    model.scale = lambda x: x
    with open(tmp_path / "model.pt", "wb") as file, pytest.raises(TypeError, match=r"obj\.scale is the function"):
        torch.save(model, file)  # word_language_model's torch.save(model, f), with a lambda in the model
    assert (tmp_path / "model.pt").read_bytes() == b""


# ----------------------------------------------------------------------------- the tool


@pytest.mark.parametrize(
    "line, expected",
    [
        ("import torch\n", "import kinone.torch as torch\n"),
        ("import torch.nn as nn\n", "import kinone.torch.nn as nn\n"),
        ("import torch.utils.data\n", "import kinone.torch.utils.data, kinone.torch as torch\n"),
        ("from torch import nn, optim\n", "from kinone.torch import nn, optim\n"),
        ("from torch.nn import functional as F\n", "from kinone.torch.nn import functional as F\n"),
        ("from torch.optim.lr_scheduler import StepLR\n", "from kinone.torch.optim.lr_scheduler import StepLR\n"),
        ("import torchvision.utils as vutils\n", "import kinone.torchvision.utils as vutils\n"),
        ("from torchvision import datasets, transforms\n", "from kinone.torchvision import datasets, transforms\n"),
        ("    import torch\n", "    import kinone.torch as torch\n"),
        ("x = torch.nn.modules.rnn.LSTM  # import torch\n", "x = torch.nn.modules.rnn.LSTM  # import torch\n"),
        ("import torchaudio\n", "import torchaudio\n"),
        ("from torch_geometric import x\n", "from torch_geometric import x\n"),
    ],
)
def test_only_import_lines_are_rewritten(line, expected):
    assert _tool().rewrite_imports(line) == expected


def test_generated_mnist_reads_as_torchvision_would(tmp_path):
    from kinone.torchvision import datasets

    _tool().make_mnist(tmp_path, train=12, test=5)
    train, test = datasets.MNIST(tmp_path, train=True), datasets.MNIST(tmp_path, train=False)
    image, label = train[3]
    assert len(train) == 12 and len(test) == 5 and image.size == (28, 28) and 0 <= label < 10


_STAND_IN = """import argparse
import torch
import torch.nn.functional as F
from torchvision import datasets, transforms

parser = argparse.ArgumentParser()
parser.add_argument("--dry-run", action="store_true")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--no-accel", action="store_true")
parser.parse_args()
dataset = datasets.MNIST("../data", train=True, download=True, transform=transforms.ToTensor())
data, target = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
assert type(torch).__name__ == "module" and torch.__name__ == "kinone.torch", torch.__name__
print("Loss: {:.4f}".format(F.nll_loss(F.log_softmax(data.view(4, -1)[:, :10], dim=1), target).item()))
"""


def test_the_tool_runs_a_checkout_and_reports(tmp_path):
    checkout = tmp_path / "examples"
    (checkout / "mnist").mkdir(parents=True)
    (checkout / "mnist" / "main.py").write_text(_STAND_IN)
    result = subprocess.run(
        [
            sys.executable,
            str(TOOL),
            "--examples",
            str(checkout),
            "--only",
            "mnist",
            "vae",
            "--workdir",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr  # vae/main.py is missing
    assert "RUNS  mnist" in result.stdout and "Loss: " in result.stdout
    assert "FAILS vae" in result.stdout and "no vae/main.py in" in result.stdout and "1 of 2 ran" in result.stdout
    assert "import kinone.torch as torch" in (tmp_path / "work" / "mnist" / "main.py").read_text()
