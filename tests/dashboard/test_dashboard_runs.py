"""kinone.dashboard.runs: run status, incremental reading, resumes, damaged logs, downsampling."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from dashboard_rundirs import FINDINGS, LAYERS, dead_pid, grad_line, train_line, val_line, write_metrics, write_run_json

from kinone.dashboard import logs
from kinone.dashboard import runs as R
from kinone.dashboard.cli import build_parser, streamlit_command
from kinone.dashboard.cli import main as cli_main
from kinone.train.run_log import RunWriter, read_metrics


# ---------------------------------------------------------------------------------- status
def test_final_statuses_are_taken_from_run_json(tmp_path):
    write_run_json(tmp_path / "a", "finished")
    write_run_json(tmp_path / "b", "failed", error="ValueError: boom")
    write_run_json(tmp_path / "c", "interrupted")
    assert R.run_status(R.read_run_info(tmp_path / "a")[0], tmp_path / "a") == ("finished", "")
    assert R.run_status(R.read_run_info(tmp_path / "b")[0], tmp_path / "b") == ("failed", "ValueError: boom")
    assert R.run_status(R.read_run_info(tmp_path / "c")[0], tmp_path / "c")[0] == "interrupted"


def test_running_with_live_process_is_running(tmp_path, old_files):
    write_run_json(tmp_path / "r", "running")  # pid: this process
    old_files(tmp_path / "r")  # even when silent for an hour (a long validation pass)
    status, reason = R.run_status(R.read_run_info(tmp_path / "r")[0], tmp_path / "r")
    assert status == "running" and "alive" in reason


def test_running_whose_process_is_gone_is_crashed(tmp_path):
    pid = dead_pid()
    write_run_json(tmp_path / "r", "running", pid=pid)
    write_metrics(tmp_path / "r", steps=5)
    status, reason = R.run_status(R.read_run_info(tmp_path / "r")[0], tmp_path / "r")
    assert status == "crashed" and str(pid) in reason


def test_running_on_another_host_is_judged_by_its_writes(tmp_path, old_files):
    run = tmp_path / "r"
    write_run_json(run, "running", host="some-other-machine", pid=1)
    write_metrics(run, steps=5)
    assert R.run_status(R.read_run_info(run)[0], run)[0] == "running"
    old_files(run, seconds=R.STALE_AFTER_S + 60)
    status, reason = R.run_status(R.read_run_info(run)[0], run)
    assert status == "crashed" and "nothing written" in reason
    # The threshold is a parameter.
    assert R.run_status(R.read_run_info(run)[0], run, stale_after=10 * R.STALE_AFTER_S)[0] == "running"


def test_missing_or_corrupt_run_json_is_unknown(tmp_path):
    write_metrics(tmp_path / "nojson", steps=3)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "run.json").write_text('{"status": "runn')
    runs = {r.name: r for r in R.find_runs(tmp_path)}
    assert runs["nojson"].status == "unknown"
    assert runs["bad"].status == "unknown" and "run.json unreadable" in runs["bad"].reason


def test_find_runs_lists_run_directories_newest_first(tmp_path, runs_dir):
    (runs_dir / "not-a-run").mkdir()
    (runs_dir / "notes.txt").write_text("x")
    write_run_json(runs_dir / "newer", "finished")
    info = json.loads((runs_dir / "newer" / "run.json").read_text())
    info["start_time"] = "2027-01-01T00:00:00+00:00"
    (runs_dir / "newer" / "run.json").write_text(json.dumps(info))
    runs = R.find_runs(runs_dir)
    names = [r.name for r in runs]
    assert names[0] == "newer"
    assert set(names) == {"newer", "finished", "live", "crashed", "failed", "empty", "noval", "corrupt"}
    statuses = {r.name: r.status for r in runs}
    assert statuses == {
        "newer": "finished",
        "finished": "finished",
        "live": "running",
        "crashed": "crashed",
        "failed": "failed",
        "empty": "running",
        "noval": "finished",
        "corrupt": "running",
    }
    # A run directory given directly is the one run.
    assert [r.name for r in R.find_runs(runs_dir / "live")] == ["live"]
    assert R.find_runs(tmp_path / "missing") == []


def test_run_files_lists_checkpoints_and_onnx(runs_dir):
    files = [p.relative_to(runs_dir / "finished").as_posix() for p in R.run_files(runs_dir / "finished")]
    assert files == ["checkpoints/best.npz", "checkpoints/latest.npz", "model.onnx"]
    assert R.run_files(runs_dir / "empty") == []


# ---------------------------------------------------------------------------------- reading
def test_runlog_matches_kinone_train_reader_on_a_real_writer(tmp_path):
    """The dashboard's columns hold what kinone.train's own reader returns, resumes applied."""
    run = tmp_path / "r"
    writer = RunWriter(run, config={"findings": FINDINGS}, model_name="m", num_parameters=3)
    for step in range(1, 31):
        writer.log(step, 0, "train", loss=1.0 / step, lr=0.1, samples_per_sec=10.0)
    writer.log(30, 0, "val", loss=0.5, mean_auroc=0.7, auroc=[0.7] * 14)
    writer.close()
    writer = RunWriter(run, resume=True)  # crashed after step 30, resumed from a step-20 checkpoint
    writer.log_event("resume", step=20, epoch=0, batch=20)
    for step in range(21, 41):
        writer.log(step, 0, "train", loss=2.0 / step, lr=0.1, samples_per_sec=10.0)
    writer.log(40, 0, "val", loss=float("nan"), mean_auroc=0.8, auroc=[0.8] * 14)
    writer.close("finished")

    expected = [r for r in read_metrics(run) if r.get("split") == "train"]
    log = R.RunLog(run)
    log.update()
    train = log.frame("train")
    assert list(train["step"]) == [r["step"] for r in expected] == list(range(1, 41))
    assert np.allclose(train["loss"], [r["loss"] for r in expected])
    val = log.frame("val")
    assert list(val["step"]) == [40]  # the step-30 validation was redone after the resume
    assert math.isnan(val["loss"].iloc[0])  # NaN written as null
    assert [e["step"] for e in log.resumes()] == [20]


def test_runlog_reads_incrementally_and_waits_for_a_half_written_line(tmp_path):
    run = tmp_path / "r"
    write_metrics(run, steps=10, validation=False, grad_every=0)
    log = R.RunLog(run)
    assert log.update() == 10
    offset = log.reader.offset
    with open(run / "metrics.jsonl", "a") as f:
        f.write(train_line(11)[:25])  # half a line
    assert log.update() == 0 and log.pending_bytes == 25 and log.reader.offset == offset
    with open(run / "metrics.jsonl", "a") as f:
        f.write(train_line(11)[25:] + train_line(12))
    assert log.update() == 2 and log.pending_bytes == 0
    assert list(log.frame("train")["step"]) == list(range(1, 13))
    assert log.update() == 0  # nothing new: nothing re-read


def test_runlog_skips_and_counts_corrupt_lines_in_every_batch(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "PARSE_BATCH", 4)  # several batches, some holding corrupt lines
    run = tmp_path / "r"
    lines = [train_line(s) for s in range(1, 21)]
    lines[3] = '{"step": 4, "split": "tr\n'
    lines[9] = "not json at all\n"
    lines[10] = "[1, 2]\n"  # valid JSON, not a record
    lines[15] = '{"step": 16}, {"step": 17}\n'  # two values on one line
    (run).mkdir()
    (run / "metrics.jsonl").write_text("".join(lines) + "\n   \n")
    log = R.RunLog(run)
    log.update()
    assert log.corrupt_lines == 4
    assert list(log.frame("train")["step"]) == [s for s in range(1, 21) if s not in (4, 10, 11, 16)]


def test_runlog_starts_over_when_the_log_is_replaced(tmp_path):
    run = tmp_path / "r"
    write_metrics(run, steps=30, validation=False, grad_every=0)
    log = R.RunLog(run)
    log.update()
    (run / "metrics.jsonl").unlink()
    write_metrics(run, steps=5, validation=False, grad_every=0)
    log.update()
    assert list(log.frame("train")["step"]) == [1, 2, 3, 4, 5]


def test_empty_run_and_missing_log(tmp_path):
    write_run_json(tmp_path / "r", "running")
    log = R.RunLog(tmp_path / "r")
    assert log.update() == 0 and log.num_records == 0
    assert log.frame("train").empty and log.last("train") is None
    assert R.series(log, "train", "loss").empty
    (tmp_path / "r" / "metrics.jsonl").write_text("")
    assert log.update() == 0 and log.num_records == 0


def test_run_without_validation_has_no_auroc(tmp_path):
    write_metrics(tmp_path / "r", steps=10, validation=False)
    log = R.RunLog(tmp_path / "r")
    log.update()
    assert log.count("val") == 0
    assert R.series(log, "val", "mean_auroc").empty
    assert R.auroc_table(log.frame("val"), {}, log.frame("test")).empty
    assert not R.series(log, "train", "loss").empty


# ---------------------------------------------------------------------------------- derived views
def test_auroc_table_latest_best_and_test_with_finding_names(tmp_path):
    run = tmp_path / "r"
    (run).mkdir()
    (run / "metrics.jsonl").write_text(
        val_line(10, 0, 0.7) + val_line(20, 1, 0.9) + val_line(30, 2, 0.8) + val_line(30, 3, 0.85, split="test")
    )
    log = R.RunLog(run)
    log.update()
    table = R.auroc_table(log.frame("val"), {"config": {"findings": FINDINGS}}, log.frame("test"))
    assert list(table.index) == FINDINGS
    assert list(table.columns) == ["latest (epoch 3, step 30)", "best (epoch 2, step 20)", "test"]
    assert math.isnan(table.loc["Effusion"].iloc[0])
    expected_best = json.loads(val_line(20, 1, 0.9))["auroc"]
    assert np.allclose(table.iloc[:, 1].drop("Effusion"), [v for i, v in enumerate(expected_best) if i != 2])
    # Without names in run.json: class 0 .. class 13.
    fallback = R.auroc_table(log.frame("val"), {})
    assert list(fallback.index)[:2] == ["class 0", "class 1"] and "test" not in fallback


def test_gradient_health_flags_vanishing_and_exploding_layers(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    lines = [grad_line(s, 0) for s in (0, 50)]
    last = json.loads(grad_line(100, 0))
    last["conv1.weight"], last["fc.bias"], last["bn1.bias"] = 1e-12, 5e4, None
    (run / "metrics.jsonl").write_text("".join(lines) + json.dumps(last) + "\n")
    log = R.RunLog(run)
    log.update()
    grads = R.grad_norm_frame(log.frame("grad_norm"))
    assert list(grads.columns) == LAYERS and list(grads.index) == [0, 50, 100]
    health = R.gradient_health(grads).set_index("layer")["flag"]
    assert health["conv1.weight"] == "vanishing" and health["fc.bias"] == "exploding"
    assert health["bn1.bias"] == "ok"  # missing at the last step: its previous value counts
    assert (
        R.gradient_health(grads.assign(**{"fc.weight": [1.0, 1.0, math.inf]})).set_index("layer")["flag"]["fc.weight"]
        == "exploding"
    )


def test_overview_row_best_from_run_json_or_validation(runs_dir):
    runs = {r.name: r for r in R.find_runs(runs_dir)}
    row = R.overview_row(runs["finished"], None)
    assert row.best == "mean_auroc 0.9000" and row.parameters == "11.2M" and row.start_time == "2026-11-30 07:31:50 UTC"
    live = R.RunLog(runs["live"].path)
    live.update()
    row = R.overview_row(runs["live"], live)
    assert row.best == "mean_auroc 0.8000" and row.steps == 40 and row.status == "running"


# ---------------------------------------------------------------------------------- downsampling
def test_downsample_keeps_extremes_ends_and_bounds():
    rng = np.random.default_rng(0)
    y = rng.standard_normal(100_003)
    y[12_345], y[77_777] = 50.0, -50.0  # spikes
    y[500:600] = np.nan
    idx = R.downsample_indices(y, 2000)
    assert len(idx) <= 2000 and idx[0] == 0 and idx[-1] == len(y) - 1
    assert np.all(np.diff(idx) > 0)
    assert 12_345 in idx and 77_777 in idx
    short = np.arange(10.0)
    assert list(R.downsample_indices(short, 2000)) == list(range(10))
    assert len(R.downsample_indices(np.full(5000, np.nan), 100)) <= 100
    assert list(R.stride_indices(5, 10)) == [0, 1, 2, 3, 4]
    s = R.stride_indices(10_000, 100)
    assert len(s) == 100 and s[0] == 0 and s[-1] == 9_999


def test_series_downsamples_and_smooths(tmp_path):
    write_metrics(tmp_path / "r", steps=5000, validation=False, grad_every=0)
    log = R.RunLog(tmp_path / "r")
    log.update()
    s = R.series(log, "train", "loss", max_points=500)
    assert len(s) <= 500 and s["step"].iloc[-1] == 5000 and s["step"].iloc[0] == 1
    smooth = R.series(log, "train", "samples_per_sec", max_points=10**6, smooth=7)
    assert np.allclose(smooth["samples_per_sec"].iloc[10:], 43.0)  # 40 + mean of 0..6


@pytest.mark.slow
def test_a_million_line_log_loads_and_downsamples(tmp_path, capsys):
    """Responsiveness on a long run: 1,000,000 lines load into columns, plot with <= 2,000
    points, and a later append is read alone. (Timings are printed, never asserted.)"""
    run = tmp_path / "big"
    run.mkdir()
    template = '{{"step": {0}, "epoch": {1}, "split": "train", "time": {2:.3f}, "loss": {3:.6f}, "lr": 0.001, "samples_per_sec": 41.5}}\n'
    with open(run / "metrics.jsonl", "w") as f:
        for start in range(1, 1_000_001, 100_000):
            f.write(
                "".join(
                    template.format(s, s // 10_000, 1.7e9 + s, 1.0 / (1 + s * 1e-4))
                    for s in range(start, start + 100_000)
                )
            )
    log = R.RunLog(run)
    t0 = time.perf_counter()
    assert log.update() == 1_000_000
    t1 = time.perf_counter()
    s = R.series(log, "train", "loss")
    t2 = time.perf_counter()
    assert len(s) <= R.MAX_POINTS and s["step"].iloc[-1] == 1_000_000
    with open(run / "metrics.jsonl", "a") as f:
        f.write(template.format(1_000_001, 100, 1.7e9, 0.5))
    assert log.update() == 1 and log.count("train") == 1_000_001
    with capsys.disabled():
        print(f"\n1,000,000-line metrics.jsonl: read {t1 - t0:.2f} s, frame + downsample {t2 - t1:.2f} s")


# ---------------------------------------------------------------------------------- command
def test_cli_binds_localhost_unless_asked(tmp_path):
    args = build_parser().parse_args([str(tmp_path)])
    command = streamlit_command(args)
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("app.py")
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
    assert command[command.index("--server.port") + 1] == "8501"
    assert command[command.index("--server.headless") + 1] == "true"
    assert command[command.index("--browser.gatherUsageStats") + 1] == "false"
    assert command[command.index("--") + 1] == str(tmp_path.resolve())
    other = streamlit_command(build_parser().parse_args([str(tmp_path), "--host", "0.0.0.0", "--port", "9000"]))
    assert other[other.index("--server.address") + 1] == "0.0.0.0" and other[other.index("--server.port") + 1] == "9000"


def test_cli_rejects_a_missing_folder(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        cli_main([str(tmp_path / "nope")])
    with pytest.raises(SystemExit, match="--port"):
        cli_main([str(tmp_path), "--port", "70000"])


def test_the_device_of_a_run_is_shown_in_its_row(tmp_path):
    from kinone.train import RunWriter

    RunWriter(tmp_path / "gpu-run", config={"device": "cuda"}, model_name="resnet18").close("finished")
    RunWriter(tmp_path / "old-run", config={}, model_name="resnet18").close("finished")
    runs = {r.name: r for r in R.find_runs(tmp_path)}
    assert R.overview_row(runs["gpu-run"], None).device == "cuda"
    assert R.overview_row(runs["old-run"], None).device == ""


def test_the_world_size_of_a_run_is_shown_in_its_row(tmp_path):
    from kinone.train import RunWriter

    RunWriter(tmp_path / "mpi-run", config={"device": "cpu", "world_size": 2}, model_name="resnet18").close("finished")
    RunWriter(tmp_path / "old-run", config={"device": "cpu"}, model_name="resnet18").close("finished")
    RunWriter(tmp_path / "odd-run", config={"world_size": "two"}, model_name="resnet18").close("finished")
    runs = {r.name: r for r in R.find_runs(tmp_path)}
    assert R.overview_row(runs["mpi-run"], None).processes == 2
    assert R.overview_row(runs["old-run"], None).processes is None
    assert runs["odd-run"].world_size is None
