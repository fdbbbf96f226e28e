"""`kinone-train` never loses or overwrites a run silently, resumes honestly, and says what is wrong in one line."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

from kinone.data import train_cli
from kinone.data.datasets.nih import make_sample
from kinone.data.train_cli import main
from kinone.train import read_metrics, read_run
from kinone.train.checkpoint import read_checkpoint_progress, read_rng_state

BASE = ["--model", "resnet18", "--image-size", "32", "--epochs", "2", "--batch-size", "16", "--no-progress"]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("nih")
    make_sample(root, n_patients=40, image_size=32, seed=0, progress=False)
    return root


@pytest.fixture
def data(sample, tmp_path):
    """A private copy of the sample, for tests that damage files."""
    root = tmp_path / "nih"
    shutil.copytree(sample, root)
    return root


def train(data_dir, run_dir, *extra):
    return main(["--data-dir", str(data_dir), "--run-dir", str(run_dir), *BASE, *extra])


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def val_image(data_dir):
    from kinone.data.datasets.nih import NIHChestXray

    return NIHChestXray(data_dir, "val").image_path(0)


# ---------------------------------------------------------------------- never overwrite a run
def test_training_into_an_existing_run_is_refused_and_leaves_it_whole(sample, tmp_path, capsys):
    run = tmp_path / "run"
    assert train(sample, run, "--max-steps", "1") == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert train(sample, run, "--max-steps", "1") == 2
    line = one_line_error(capsys)
    assert str(run) in line and "--resume" in line and "--run-dir" in line and "--overwrite" in line
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_overwrite_moves_the_old_run_aside(sample, tmp_path):
    run = tmp_path / "run"
    assert train(sample, run, "--max-steps", "1") == 0
    first_start = read_run(run)["start_time"]
    old_metrics = (run / "metrics.jsonl").read_bytes()
    assert train(sample, run, "--max-steps", "2", "--overwrite") == 0
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(aside) == 1
    assert read_run(aside[0])["start_time"] == first_start
    assert (aside[0] / "metrics.jsonl").read_bytes() == old_metrics
    assert [r["step"] for r in read_metrics(run) if r.get("split") == "train"] == [1, 2]


# ---------------------------------------------------------------------- --resume is explicit and honest
def test_resume_without_a_run_is_an_error_not_a_fresh_run(sample, tmp_path, capsys):
    assert main(["--data-dir", str(sample), *BASE, "--resume"]) == 2
    assert "--resume needs --run-dir" in one_line_error(capsys)
    assert train(sample, tmp_path / "misspelled", "--resume") == 2
    assert "holds no run" in one_line_error(capsys)
    assert not (tmp_path / "misspelled").exists()


def test_resume_takes_the_configuration_from_run_json(sample, tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "--data-dir",
                str(sample),
                "--run-dir",
                str(run),
                "--model",
                "resnet18",
                "--image-size",
                "32",
                "--epochs",
                "3",
                "--batch-size",
                "8",
                "--lr",
                "0.003",
                "--seed",
                "5",
                "--no-progress",
                "--max-steps",
                "2",
            ]
        )
        == 0
    )
    capsys.readouterr()
    # No flag but --run-dir: model, sizes, batch, epochs, lr, seed and data come from run.json.
    assert main(["--run-dir", str(run), "--resume", "--no-progress", "--max-steps", "4"]) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "latest.npz" in out and "step 2" in out
    config = read_run(run)["config"]
    assert (config["batch_size"], config["epochs"], config["image_size"], config["lr"], config["seed"]) == (
        8,
        3,
        32,
        0.003,
        5,
    )
    assert [r["step"] for r in read_metrics(run) if r.get("split") == "train"] == [1, 2, 3, 4]


def test_resume_refuses_a_conflicting_flag_by_name(sample, tmp_path, capsys):
    run = tmp_path / "run"
    assert train(sample, run, "--max-steps", "1") == 0
    capsys.readouterr()
    assert main(["--run-dir", str(run), "--resume", "--batch-size", "8"]) == 2
    line = one_line_error(capsys)
    assert "--batch-size 8" in line and "16" in line
    assert main(["--run-dir", str(run), "--resume", "--epochs", "5"]) == 2
    assert "schedule" in one_line_error(capsys)
    assert read_run(run)["status"] == "finished"


def test_resuming_a_finished_run_says_there_is_nothing_to_do(sample, tmp_path, capsys):
    run = tmp_path / "run"
    assert train(sample, run) == 0
    steps = [r["step"] for r in read_metrics(run) if r.get("split") == "train"]
    capsys.readouterr()
    assert main(["--run-dir", str(run), "--resume", "--no-progress"]) == 0
    assert "nothing to resume" in capsys.readouterr().out
    assert [r["step"] for r in read_metrics(run) if r.get("split") == "train"] == steps


def test_a_run_stopped_before_its_first_checkpoint_cannot_be_resumed(sample, tmp_path, capsys):
    run = tmp_path / "run"
    assert train(sample, run, "--max-steps", "1") == 0
    for path in (run / "checkpoints").iterdir():
        path.unlink()
    capsys.readouterr()
    assert main(["--run-dir", str(run), "--resume"]) == 2
    assert "no checkpoint" in one_line_error(capsys)


def test_a_failed_resume_is_recorded_as_failed(sample, tmp_path, capsys):
    run = tmp_path / "run"
    assert train(sample, run, "--max-steps", "1") == 0
    (run / "checkpoints" / "latest.npz").write_bytes(b"not a zip file")
    capsys.readouterr()
    assert main(["--run-dir", str(run), "--resume", "--no-progress", "--max-steps", "2"]) == 1
    line = one_line_error(capsys)
    assert "latest.npz" in line
    info = read_run(run)
    assert info["status"] == "failed" and "latest.npz" in info["error"]


# ---------------------------------------------------------------------- no epoch lost to a bad file
def test_a_bad_validation_image_loses_no_training(data, tmp_path, capsys):
    run = tmp_path / "run"
    bad = val_image(data)
    good = bad.read_bytes()
    bad.write_bytes(good[:60])  # a PNG cut short: its header reads, its pixels do not
    assert train(data, run, "--no-check-images") == 1
    assert str(bad.name) in one_line_error(capsys)
    progress = read_checkpoint_progress(run / "checkpoints" / "latest.npz")
    assert progress["epoch"] == 1 and progress["validated"] is False  # the epoch's training is kept
    assert read_run(run)["status"] == "failed"
    trained = [r["step"] for r in read_metrics(run) if r.get("split") == "train"]

    bad.write_bytes(good)
    assert main(["--run-dir", str(run), "--resume", "--no-progress"]) == 0
    records = read_metrics(run)
    train_steps = [r["step"] for r in records if r.get("split") == "train"]
    assert train_steps[: len(trained)] == trained and len(train_steps) == 2 * len(trained)
    assert [r["epoch"] for r in records if r.get("split") == "val"] == [0, 1]  # the lost validation is redone
    assert read_run(run)["status"] == "finished"


def test_unreadable_images_are_named_before_the_first_step(data, tmp_path, capsys):
    run = tmp_path / "run"
    bad = val_image(data)
    bad.write_bytes(b"this is not a png")
    assert train(data, run) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(bad) in err and "--no-check-images" in err
    assert not (run / "metrics.jsonl").exists() or not [r for r in read_metrics(run) if r.get("split") == "train"]


# ---------------------------------------------------------------------- one-line errors
@pytest.mark.parametrize(
    "flag, value",
    [
        ("--batch-size", "0"),
        ("--lr", "-1"),
        ("--image-size", "0"),
        ("--image-size", "7"),
        ("--epochs", "0"),
        ("--num-workers", "-1"),
        ("--checkpoint-every", "0"),
        ("--val-fraction", "1.5"),
    ],
)
def test_a_bad_flag_value_is_one_line_and_exit_2(sample, tmp_path, capsys, flag, value):
    assert train(sample, tmp_path / "run", flag, value) == 2
    line = one_line_error(capsys)
    assert line.startswith("kinone-train: ") and flag in line and "expected" in line
    assert not (tmp_path / "run").exists()


def test_an_unparsable_flag_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--batch-size", "many"])
    assert exit_info.value.code == 2
    assert "--batch-size" in one_line_error(capsys)


def test_a_truncated_csv_is_one_line_naming_the_file(data, tmp_path, capsys):
    csv = data / "Data_Entry_2017_v2020.csv"
    text = csv.read_text()
    csv.write_text(text[: text.rindex(",", 0, len(text) - 5)])
    assert train(data, tmp_path / "run") == 1
    assert "Data_Entry_2017_v2020.csv" in one_line_error(capsys)


def test_an_unknown_finding_is_one_line(data, tmp_path, capsys):
    csv = data / "Data_Entry_2017_v2020.csv"
    csv.write_text(csv.read_text().replace("Cardiomegaly", "Cardiomegally", 1))
    assert train(data, tmp_path / "run") == 1
    assert "Cardiomegally" in one_line_error(capsys)


def test_a_missing_image_is_one_line_naming_the_flag_that_skips_it(data, tmp_path, capsys):
    val_image(data).unlink()
    assert train(data, tmp_path / "run") == 1
    assert "--skip-missing" in one_line_error(capsys)
    assert train(data, tmp_path / "run2", "--skip-missing", "--max-steps", "1") == 0


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(sample, tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(train_cli, "build_model", broken)
    assert train(sample, tmp_path / "run") == 1
    assert "something broke (--debug shows the traceback)" in one_line_error(capsys)
    with pytest.raises(RuntimeError):
        train(sample, tmp_path / "run2", "--debug")


def test_export_onnx_is_checked_before_training(sample, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(train_cli, "_onnx_exporter", lambda: None)
    assert train(sample, tmp_path / "run", "--export-onnx") == 2
    line = one_line_error(capsys)
    assert "kinone-onnx" in line and "pip install" in line
    assert not (tmp_path / "run").exists()


def test_help_shows_the_true_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    for default in (
        "(default 224)",
        "(default 5)",
        "(default 32)",
        "(default 0.001)",
        "(default adamw)",
        "(default 0.0001)",
        "(default 200)",
        "(default 0.1)",
        "--image-size 64 --epochs 3 --lr 0.002",
    ):
        assert default in out


# ---------------------------------------------------------------------- what a run prints and records
def test_validation_auroc_is_printed_every_epoch_and_python_random_is_seeded(sample, tmp_path, capsys):
    run = tmp_path / "run"
    random.seed(12345)
    assert train(sample, run, "--seed", "3") == 0
    out = capsys.readouterr().out
    assert "epoch 1/2" in out and "epoch 2/2" in out and out.count("mean AUROC") >= 2
    random.seed(3)
    assert tuple(read_rng_state(run / "checkpoints" / "latest.npz")["python"][1]) == random.getstate()[1]


def test_epochs_zero_leaves_no_run(sample, tmp_path):
    assert train(sample, tmp_path / "run", "--epochs", "0") == 2
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------- Ctrl-C
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_ctrl_c_checkpoints_the_current_step_and_prints_the_resume_command(sample, tmp_path):
    run = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "kinone.data.train_cli",
        "--data-dir",
        str(sample),
        "--run-dir",
        str(run),
        *BASE[:4],
        "--epochs",
        "200",
        *BASE[6:],
        "--checkpoint-every",
        "1000",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if (run / "metrics.jsonl").exists() and sum(r.get("split") == "train" for r in read_metrics(run)) >= 3:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and f"resume with: kinone-train --run-dir {run} --resume" in lines[0]
    info = read_run(run)
    progress = read_checkpoint_progress(run / "checkpoints" / "latest.npz")
    steps = [r["step"] for r in read_metrics(run) if r.get("split") == "train"]
    assert info["status"] == "interrupted" and progress["step"] == info["step"] == steps[-1] >= 3


def test_a_name_listed_twice_is_reported_in_one_line_and_used_once(data, tmp_path, capsys):
    listing = data / "test_list.txt"
    names = listing.read_text().split()
    listing.write_text("\n".join(names + names[:1]) + "\n")
    assert train(data, tmp_path / "run", "--max-steps", "1") == 0
    err = capsys.readouterr().err
    warning_lines = [line for line in err.splitlines() if "more than once" in line]
    assert (
        len(warning_lines) == 1
        and warning_lines[0].startswith("kinone-train: warning:")
        and names[0] in warning_lines[0]
    )
    assert read_run(tmp_path / "run")["config"]["test_images"] == len(names)


# ---------------------------------------------------------------------- --device
def test_device_cuda_without_a_gpu_is_a_usage_error(sample, tmp_path, capsys):
    from kinone.autograd import backend

    if backend.cuda_is_available():
        pytest.skip("a CUDA device is available here")
    assert train(sample, tmp_path / "run", "--device", "cuda") == 2
    assert "--device cuda" in one_line_error(capsys)
    assert not (tmp_path / "run").exists()


def test_training_on_the_standin_cuda_device_records_it_and_resumes_on_the_cpu(sample, tmp_path, capsys):
    from kinone.autograd import backend

    run = tmp_path / "run"
    with backend.use_standin_cuda():
        assert train(sample, run, "--device", "cuda", "--max-steps", "2", "--no-check-images") == 0
    assert read_run(run)["config"]["device"] == "cuda"
    assert "on cuda" in capsys.readouterr().out
    # The checkpoint holds host arrays: the run continues on the CPU.
    assert main(["--run-dir", str(run), "--resume", "--no-progress", "--max-steps", "3", "--device", "cpu"]) == 0
    assert [r["step"] for r in read_metrics(run) if r.get("split") == "train"] == [1, 2, 3]


# ---------------------------------------------------------------------- --cache
def test_training_from_a_prepared_cache(sample, tmp_path, capsys):
    from kinone.data.cache import prepare_cache

    cache = tmp_path / "cache"
    prepare_cache(sample, cache, image_size=32, workers=1, progress=False)
    run = tmp_path / "run"
    assert train(sample, run, "--cache", str(cache), "--max-steps", "2") == 0
    assert [r["step"] for r in read_metrics(run) if r.get("split") == "train"] == [1, 2]
    assert read_run(run)["config"]["cache"] == str(cache)
    assert (
        main(["--run-dir", str(run), "--resume", "--no-progress", "--max-steps", "3"]) == 0
    )  # the cache from run.json
    assert [r["step"] for r in read_metrics(run) if r.get("split") == "train"] == [1, 2, 3]
    assert train(sample, tmp_path / "run2", "--cache", str(cache), "--image-size", "64") == 2
    assert "kinone-prepare --image-size 64" in one_line_error(capsys)
    assert train(sample, tmp_path / "run3", "--cache", str(tmp_path / "nope")) == 1
    assert "no index.json" in one_line_error(capsys)
