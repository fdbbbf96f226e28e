"""The Streamlit app, headless (streamlit.testing.v1.AppTest): each view on generated runs."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("streamlit")

from dashboard_rundirs import FINDINGS, grad_line, snapshot, train_line, val_line, write_metrics, write_run_json
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

import kinone.dashboard

APP = Path(kinone.dashboard.__file__).with_name("app.py")
TIMEOUT = 120  # seconds per run; AppTest's default (3 s) is too short for a cold CI machine


def open_app(runs_dir: Path, monkeypatch, **query) -> AppTest:
    monkeypatch.setenv("KINONE_DASHBOARD_RUNS_DIR", str(runs_dir))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chart_title(chart) -> str:
    title = json.loads(chart.proto.spec).get("title", "")
    return title if isinstance(title, str) else title.get("text", "")


def charts(at: AppTest) -> dict[str, pd.DataFrame]:
    """Every chart's title and the data it plots (its first dataset: a layered chart's second
    one only repeats some rows, for markers)."""
    out = {}
    for chart in at.get("vega_lite_chart"):
        datasets = chart.proto.datasets
        out[chart_title(chart)] = (
            convert_arrow_bytes_to_pandas_df(datasets[0].data.data) if datasets else pd.DataFrame()
        )
    return out


def texts(elements) -> str:
    """The texts of elements, Markdown escapes undone (the app escapes text from run files)."""
    return "\n".join(unescape(str(e.value)) for e in elements)


def unescape(markdown: str) -> str:
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


# ---------------------------------------------------------------------------------- views
def test_runs_view_lists_every_run(runs_dir, monkeypatch):
    at = open_app(runs_dir, monkeypatch)
    assert at.header[0].value == "Runs"
    table = at.dataframe[0].value.set_index("run")
    assert table.loc["finished", "status"] == "finished"
    assert table.loc["live", "status"] == "running"
    assert table.loc["crashed", "status"] == "crashed"
    assert table.loc["failed", "status"] == "failed"
    assert table.loc["empty", "status"] == "running"
    assert table.loc["finished", "model"] == "resnet18" and table.loc["finished", "parameters"] == "11.2M"
    assert table.loc["finished", "start time"] == "2026-11-30 07:31:50 UTC"
    assert table.loc["finished", "best metric"] == "mean_auroc 0.9000"  # from run.json
    assert table.loc["live", "best metric"] == "mean_auroc 0.8000"  # from its validation records so far
    assert table.loc["live", "steps"] == 40
    assert "FloatingPointError" in table.loc["failed", "detail"]
    assert "8 run(s)" not in at.caption[0].value and "7 run(s)" in at.caption[0].value


def test_run_view_of_a_finished_run(runs_dir, monkeypatch):
    at = open_app(runs_dir, monkeypatch, run="finished")
    assert at.sidebar.radio[0].value == "Run" and at.header[0].value == "finished"
    assert metric(at, "step") == "60" and metric(at, "epoch") == "3"
    assert metric(at, "val mean AUROC") == "0.9000"
    plotted = charts(at)
    assert {
        "loss (train and validation)",
        "validation mean AUROC",
        "learning rate",
        "AUROC per finding",
        "gradient norm per layer (log10)",
        "gradient norm of chosen layers",
    } <= set(plotted)
    assert any(t.startswith("throughput") for t in plotted)
    loss = plotted["loss (train and validation)"]
    assert set(loss["series"]) == {"train", "validation"}
    assert loss[loss["series"] == "train"]["step"].max() == 60 and sorted(
        loss[loss["series"] == "validation"]["step"]
    ) == [20, 40, 60]
    assert list(plotted["validation mean AUROC"]["mean_auroc"].round(3)) == [0.7, 0.8, 0.9]
    assert plotted["learning rate"]["lr"].max() == pytest.approx(1e-3)
    # The per-finding AUROC table: latest, best and test, named findings, Effusion undefined.
    table = at.dataframe[0].value
    assert list(table.index) == FINDINGS + ["mean"]
    assert list(table.columns) == ["latest (epoch 3, step 60)", "best (epoch 3, step 60)", "test"]
    assert pd.isna(table.loc["Effusion"]).all() and table.loc["Atelectasis"].notna().all()
    bars = plotted["AUROC per finding"]
    assert set(bars["finding"]) == set(FINDINGS) - {"Effusion"}
    # Gradient health: every layer fine; the heatmap covers every logged step.
    assert "All 6 layers healthy" in texts(at.success)
    assert sorted(set(plotted["gradient norm per layer (log10)"]["step"])) == [0, 10, 20, 30, 40, 50]
    # Config and downloads.
    assert any(isinstance(j.value, dict) and j.value.get("lr") == 0.002 for j in at.json) or any(
        '"lr"' in str(j.proto.body) for j in at.json
    )
    labels = [unescape(b.label) for b in at.get("download_button")]
    assert [label.split(" ")[0] for label in labels] == ["checkpoints/best.npz", "checkpoints/latest.npz", "model.onnx"]


@pytest.mark.parametrize(
    "run, kind, needle",
    [
        ("empty", "info", "No metrics logged yet"),
        ("noval", "info", "No validation records"),
        ("noval", "info", "No per-finding AUROC yet"),
        ("corrupt", "warning", "1 corrupt line"),
        ("corrupt", "info", "half-written last line"),
        ("failed", "error", "failed, with this error"),
        ("failed", "code", "FloatingPointError: the training loss became nan at step 12"),
        ("crashed", "warning", "crashed: its process"),
    ],
)
def test_damaged_and_unusual_runs_are_shown_as_such(runs_dir, monkeypatch, run, kind, needle):
    at = open_app(runs_dir, monkeypatch, run=run)
    assert at.header[0].value == run
    assert needle in texts(getattr(at, kind))


def test_run_without_finding_names_numbers_the_classes(tmp_path, monkeypatch):
    write_run_json(tmp_path / "r", "finished", findings=None)
    write_metrics(tmp_path / "r", steps=10, epochs=1)
    at = open_app(tmp_path, monkeypatch, run="r")
    assert list(at.dataframe[0].value.index)[:2] == ["class 0", "class 1"]


def test_gradient_health_flags_exploding_and_vanishing_layers(tmp_path, monkeypatch):
    run = tmp_path / "r"
    write_run_json(run, "running")
    write_metrics(run, steps=20, epochs=1)
    bad = json.loads(grad_line(20, 0))
    bad["fc.weight"], bad["conv1.weight"] = 3e5, 1e-11
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps(bad) + "\n")
    at = open_app(tmp_path, monkeypatch, run="r")
    flagged = texts(at.error)
    assert "2 layer(s) flagged at step 20" in flagged
    assert "fc.weight (exploding" in flagged and "conv1.weight (vanishing" in flagged
    assert set(at.multiselect(key="layers-r").value) == {"conv1.weight", "fc.weight"}  # the flagged layers, plotted
    health = at.dataframe[-1].value.set_index("layer")
    assert health.loc["fc.weight", "flag"] == "exploding" and health.loc["bn1.weight", "flag"] == "ok"


def test_run_view_follows_the_growing_log(runs_dir, monkeypatch):
    at = open_app(runs_dir, monkeypatch, run="live")
    assert metric(at, "step") == "40"
    with open(runs_dir / "live" / "metrics.jsonl", "a") as f:
        f.writelines([train_line(s, 2) for s in range(41, 56)] + [val_line(55, 2, 0.95)])
    at.run()  # what the fragment's timer does in a browser
    assert not at.exception
    assert metric(at, "step") == "55" and metric(at, "val mean AUROC") == "0.9500"
    loss = charts(at)["loss (train and validation)"]
    assert loss["step"].max() == 55


def test_compare_view_overlays_runs(runs_dir, monkeypatch):
    at = open_app(runs_dir, monkeypatch)
    at.sidebar.radio[0].set_value("Compare").run()
    assert "Choose runs to compare" in texts(at.info)
    at.sidebar.multiselect[0].set_value(["finished", "live", "noval"]).run()
    assert not at.exception
    plotted = charts(at)
    assert set(plotted["train loss"]["run"]) == {"finished", "live", "noval"}
    assert set(plotted["validation mean AUROC"]["run"]) == {"finished", "live"}
    assert set(at.dataframe[0].value["run"]) == {"finished", "live", "noval"}
    # ?compare=a,b opens the comparison directly.
    at = open_app(runs_dir, monkeypatch, compare="finished,crashed")
    assert at.header[0].value == "Compare runs"
    assert set(charts(at)["train loss"]["run"]) == {"finished", "crashed"}


def test_empty_and_missing_runs_folders(tmp_path, monkeypatch):
    (tmp_path / "none").mkdir()
    at = open_app(tmp_path / "none", monkeypatch)
    assert "No runs here yet" in texts(at.info)
    at = open_app(tmp_path / "missing", monkeypatch)
    assert "is not a folder" in texts(at.error)


def test_the_app_never_writes_into_run_directories(runs_dir, monkeypatch):
    before = snapshot(runs_dir)
    at = open_app(runs_dir, monkeypatch)
    at.sidebar.radio[0].set_value("Run").run()
    for name in ("finished", "live", "crashed", "failed", "empty", "noval", "corrupt"):
        at.sidebar.selectbox[0].set_value(name).run()
        assert not at.exception
    at.sidebar.radio[0].set_value("Compare").run()
    at.sidebar.multiselect[0].set_value(["finished", "live"]).run()
    assert not at.exception
    assert snapshot(runs_dir) == before


@pytest.mark.slow
def test_a_million_line_run_renders_downsampled(tmp_path, monkeypatch, capsys):
    """First render of a run with 1,000,000 logged steps (timing printed, never asserted)."""
    run = tmp_path / "big"
    write_run_json(run, "running")
    template = '{{"step": {0}, "epoch": {1}, "split": "train", "time": {2:.3f}, "loss": {3:.6f}, "lr": 0.001, "samples_per_sec": 41.5}}\n'
    with open(run / "metrics.jsonl", "w") as f:
        for start in range(1, 1_000_001, 100_000):
            f.write(
                "".join(
                    template.format(s, s // 10_000, 1.7e9 + s, 1.0 / (1 + s * 1e-4))
                    for s in range(start, start + 100_000)
                )
            )
        f.write(val_line(1_000_000, 99, 0.8) + grad_line(1_000_000, 99))
    t0 = time.perf_counter()
    at = open_app(tmp_path, monkeypatch, run="big")
    t1 = time.perf_counter()
    at.run()
    t2 = time.perf_counter()
    assert metric(at, "step") == "1,000,000"
    loss = charts(at)["loss (train and validation)"]
    assert len(loss) <= 2000 and loss["step"].max() == 1_000_000
    with capsys.disabled():
        print(f"\n1,000,000-line run: first render {t1 - t0:.2f} s, next refresh {t2 - t1:.2f} s")


# ---------------------------------------------------------------------------------- run files are text, not Markdown
HOSTILE = "![x](http://example.invalid/a.png) **bold** :red[red] $x^2$"
# A folder or file name cannot hold "/", but browsers read "\" as "/" in an http address.
HOSTILE_NAME = r"![n](http:\\example.invalid\n.png) **b**"


def _unescaped(markdown: str) -> str:
    """A Markdown source without its backslash-escaped characters (what stays Markdown syntax)."""
    return re.sub(r"\\[!-/:-@\[-`{-~]", "", markdown)


def _markdown_sources(at: AppTest) -> list[str]:
    """Every text of the page that Streamlit renders as Markdown: markdown, captions, headings,
    alerts, and the labels of widgets, metrics and expanders."""
    sources = []
    for kind in ("markdown", "caption", "title", "header", "subheader", "error", "warning", "info", "success"):
        sources += [str(e.value) for e in at.get(kind)]
    for kind in ("download_button", "metric", "expander", "selectbox", "multiselect", "number_input", "radio", "tabs"):
        sources += [str(getattr(e, "label", "")) for e in at.get(kind)]
    sources += [str(o) for r in at.get("radio") for o in r.options]
    return sources


def _no_markdown_from_run_files(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    for source in _markdown_sources(at):
        plain = _unescaped(source)
        assert "](" not in plain and "**b" not in plain and ":red[" not in plain and "$x" not in plain, source


def test_text_from_run_files_is_never_rendered_as_markdown(tmp_path, monkeypatch):
    failed = tmp_path / HOSTILE_NAME
    write_run_json(failed, "failed", error=HOSTILE, model=HOSTILE, findings=[HOSTILE] * len(FINDINGS))
    write_metrics(failed, steps=20, epochs=1)
    bad = json.loads(grad_line(20, 0))
    bad[HOSTILE] = 3e5  # a layer name is a metric name from the log
    with open(failed / "metrics.jsonl", "a") as f:
        f.write(json.dumps(bad) + "\n" + json.dumps({"event": "resume", "step": HOSTILE}) + "\n")
    (failed / "checkpoints").mkdir()
    (failed / "checkpoints" / f"{HOSTILE_NAME}.npz").write_bytes(b"npz")
    odd = tmp_path / "odd"
    write_run_json(odd, HOSTILE)  # an unknown status, quoted in the reason

    at = open_app(tmp_path, monkeypatch)
    _no_markdown_from_run_files(at)
    at = open_app(tmp_path, monkeypatch, run=HOSTILE_NAME)
    _no_markdown_from_run_files(at)
    assert HOSTILE in [c.value for c in at.code]  # the error, literally
    assert any(HOSTILE in str(t.value) for t in at.text)  # the model, literally
    at.sidebar.selectbox[0].set_value("odd").run()
    _no_markdown_from_run_files(at)
    assert any(HOSTILE in str(c.value) for c in at.code)
    at.sidebar.radio[0].set_value("Compare").run()
    at.sidebar.multiselect[0].set_value([HOSTILE_NAME, "odd"]).run()
    _no_markdown_from_run_files(at)


def test_long_lines_and_refused_logs_are_reported(tmp_path, monkeypatch):
    run = tmp_path / "long"
    write_run_json(run, "running")
    write_metrics(run, steps=2, epochs=1, validation=False, grad_every=0)
    start = (run / "metrics.jsonl").stat().st_size
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"junk": "' + "x" * 2**21 + '"}\n' + train_line(3))
    linked = tmp_path / "linked"
    write_run_json(linked, "running")
    (linked / "metrics.jsonl").symlink_to(run / "metrics.jsonl")
    at = open_app(tmp_path, monkeypatch, run="long")
    assert (
        f"1 corrupt line(s) in metrics.jsonl were skipped: line 3 (byte {start:,}): longer than 1 MiB (2 MiB)"
        in texts(at.warning)
    )
    assert metric(at, "step") == "3"
    at.sidebar.selectbox[0].set_value("linked").run()
    assert "metrics.jsonl was not read" in texts(at.error)
    assert "not a regular file inside the run directory" in texts(at.code)


# ---------------------------------------------------------------------------------- opening a run from the table
def test_clicking_a_row_of_the_runs_table_opens_that_run(runs_dir, monkeypatch):
    at = open_app(runs_dir, monkeypatch)
    table = at.dataframe[0]
    assert table.key == "runs-table"
    row = list(table.value["run"]).index("crashed")
    at.session_state["runs-table"] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.sidebar.radio[0].value == "Run" and at.sidebar.selectbox[0].value == "crashed"
    assert at.header[0].value == "crashed"
    # Back to the list: the table shows again, nothing selected, no jump back.
    at.sidebar.radio[0].set_value("Runs").run()
    assert at.header[0].value == "Runs" and at.sidebar.radio[0].value == "Runs"


def test_a_data_parallel_run_shows_its_processes_next_to_its_device(tmp_path, monkeypatch):
    from kinone.train import RunWriter

    writer = RunWriter(
        tmp_path / "mpi-run",
        config={"device": "cpu", "world_size": 2},
        model_name="resnet18",
        num_parameters=11_177_422,
    )
    writer.log(1, 0, "train", loss=1.0, lr=1e-3)
    writer.close("finished")
    at = open_app(tmp_path, monkeypatch, run="mpi-run")
    assert "model resnet18 · on cpu · 2 processes · 11.2M parameters" in texts(at.text)
    at = open_app(tmp_path, monkeypatch)
    table = at.dataframe[0].value.set_index("run")
    assert table.loc["mpi-run", "processes"] == 2 and table.loc["mpi-run", "device"] == "cpu"
