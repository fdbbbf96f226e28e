"""`kinone-train` end to end on a tiny generated sample."""

from __future__ import annotations

import json

import pytest

from kinone.autograd.graph import parse_dot
from kinone.data.datasets.nih import FINDINGS
from kinone.data.datasets.nih_sample import make_sample
from kinone.data.train_cli import main
from kinone.train import read_metrics, read_run


@pytest.fixture(scope="module")
def tiny_sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("nih")
    make_sample(root, n_patients=40, image_size=32, seed=0, progress=False)
    return root


def _train(tiny_sample, run_dir, *extra):
    return main(
        [
            "--data-dir",
            str(tiny_sample),
            "--model",
            "resnet18",
            "--image-size",
            "32",
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--run-dir",
            str(run_dir),
            "--no-progress",
            *extra,
        ]
    )


def test_trains_logs_checkpoints_and_reports_test_auroc(tiny_sample, tmp_path, capsys):
    assert _train(tiny_sample, tmp_path / "run", "--max-steps", "3", "--checkpoint-every", "2") == 0
    out = capsys.readouterr().out
    assert "Test split" in out and "Cardiomegaly" in out and "Run directory" in out
    info = read_run(tmp_path / "run")
    assert info["status"] == "finished" and info["model"] == "resnet18"
    assert info["config"]["findings"] == list(FINDINGS)
    records = read_metrics(tmp_path / "run")
    assert sum(r.get("split") == "train" for r in records) == 3
    assert any(r.get("split") == "val" and "mean_auroc" in r for r in records)
    assert any(r.get("split") == "test" for r in records)
    assert any(r.get("split") == "grad_norm" for r in records)
    assert set(json.loads((tmp_path / "run" / "test_auroc.json").read_text())) == set(FINDINGS)
    assert (tmp_path / "run" / "checkpoints" / "latest.npz").exists()
    graph = parse_dot((tmp_path / "run" / "graph.dot").read_text())  # the model, one node per block
    assert [n.title for n in graph.nodes][:6] == ["input", "conv1", "bn1", "relu", "maxpool", "layer1.0"]
    assert graph.nodes[0].shape == (1, 1, 32, 32) and graph.nodes[-1].shape == (1, len(FINDINGS))
    assert "layer1.0.conv1.weight" in graph.nodes[5].parameters


def test_resume_continues_the_run(tiny_sample, tmp_path):
    _train(tiny_sample, tmp_path / "run", "--max-steps", "2")
    graph = tmp_path / "run" / "graph.dot"
    graph.write_text(graph.read_text() + "// the run's own\n")
    _train(tiny_sample, tmp_path / "run", "--max-steps", "4", "--resume")
    assert graph.read_text().endswith("// the run's own\n")  # a resumed run keeps its graph
    steps = [r["step"] for r in read_metrics(tmp_path / "run") if r.get("split") == "train"]
    assert steps == [1, 2, 3, 4]
    assert len(read_run(tmp_path / "run")["resumed_at"]) == 1


def test_a_wrong_data_dir_says_what_was_expected(tmp_path, capsys):
    assert main(["--data-dir", str(tmp_path), "--no-progress"]) == 1
    assert "does not look like NIH ChestX-ray14; expected in it: Data_Entry_2017_v2020.csv" in capsys.readouterr().err
    assert main(["--data-dir", str(tmp_path / "nope"), "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["--no-progress"]) == 2
    assert "give --data-dir" in capsys.readouterr().err


def _has_onnx_exporter() -> bool:
    from importlib.metadata import entry_points

    return any(ep.name == "onnx" for ep in entry_points(group="kinone.export"))


@pytest.mark.skipif(not _has_onnx_exporter(), reason="kinone-onnx is not installed in this environment")
def test_export_onnx_writes_a_model_that_onnxruntime_runs(tiny_sample, tmp_path):
    import numpy as np
    import onnx
    import onnxruntime

    assert _train(tiny_sample, tmp_path / "run", "--max-steps", "2", "--export-onnx") == 0
    path = tmp_path / "run" / "model.onnx"
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": np.zeros((3, 1, 32, 32), np.float32)})
    assert logits.shape == (3, len(FINDINGS))


@pytest.mark.skipif(_has_onnx_exporter(), reason="kinone-onnx is installed in this environment")
def test_export_onnx_without_kinone_onnx_is_refused_before_training(tiny_sample, tmp_path, capsys):
    assert _train(tiny_sample, tmp_path / "run", "--max-steps", "1", "--export-onnx") == 2
    assert "kinone-onnx" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
