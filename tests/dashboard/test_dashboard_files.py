"""What the dashboard reads and serves from a run directory: only regular files inside it (no
link out of it, no FIFO), checked again when served; metrics.jsonl with a line far longer than
any record (a 200 MB line, half-written or complete) read in bounded memory, once."""

from __future__ import annotations

import json
import os
import tracemalloc

import numpy as np
import pytest
from dashboard_rundirs import train_line, write_metrics, write_run_json

from kinone.dashboard import listing, logs
from kinone.dashboard import runs as R

needs_links = pytest.mark.skipif(os.name == "nt", reason="symlinks and FIFOs need POSIX")


def _link(target, link) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)


@pytest.fixture
def hostile_run(tmp_path):
    """A run whose folder holds one real checkpoint and links and a FIFO posing as downloads."""
    other = tmp_path / "other"
    write_run_json(other, "finished")
    (other / "checkpoints").mkdir()
    np.savez(other / "checkpoints" / "secret.npz", w=np.zeros(2))
    run = tmp_path / "run"
    write_run_json(run, "finished")
    (run / "checkpoints").mkdir()
    np.savez(run / "checkpoints" / "latest.npz", w=np.ones(3))
    _link("/etc/passwd", run / "checkpoints" / "passwd.npz")
    _link("/etc/shadow", run / "shadow.onnx")
    _link("/proc/self/environ", run / "environ.onnx")
    _link(other / "checkpoints" / "secret.npz", run / "checkpoints" / "other-run.npz")
    _link("../../other/checkpoints/secret.npz", run / "checkpoints" / "relative.npz")
    os.mkfifo(run / "checkpoints" / "fifo.npz")
    os.mkfifo(run / "pipe.onnx")
    return run


@needs_links
def test_only_regular_files_inside_the_run_are_offered(hostile_run):
    offered = [p.relative_to(hostile_run).as_posix() for p in R.run_files(hostile_run)]
    assert offered == ["checkpoints/latest.npz"]


@needs_links
@pytest.mark.parametrize(
    "name",
    [
        "checkpoints/passwd.npz",
        "shadow.onnx",
        "environ.onnx",
        "checkpoints/other-run.npz",
        "checkpoints/relative.npz",
        "checkpoints/fifo.npz",
        "pipe.onnx",
    ],
)
def test_links_and_fifos_cannot_be_served(hostile_run, name):
    with pytest.raises(R.UnsafeRunFile, match="not a regular file inside the run directory"):
        R.read_run_file(hostile_run, name)


@needs_links
def test_paths_out_of_the_run_and_other_files_cannot_be_served(hostile_run, tmp_path):
    for name in (
        "../other/checkpoints/secret.npz",
        str(tmp_path / "other" / "checkpoints" / "secret.npz"),
        "checkpoints/../../other/checkpoints/secret.npz",
        "run.json",
        "checkpoints",
    ):
        with pytest.raises(R.UnsafeRunFile):
            R.read_run_file(hostile_run, name)
    assert (
        R.read_run_file(hostile_run, "checkpoints/latest.npz")
        == (hostile_run / "checkpoints" / "latest.npz").read_bytes()
    )


@needs_links
def test_a_file_swapped_for_a_link_after_listing_is_refused(hostile_run, tmp_path):
    offered = R.run_files(hostile_run)
    assert [p.name for p in offered] == ["latest.npz"]
    offered[0].unlink()
    _link("/etc/passwd", offered[0])
    with pytest.raises(R.UnsafeRunFile):
        R.read_run_file(hostile_run, "checkpoints/latest.npz")
    # The same with the folder above it swapped for a link to another run's checkpoints.
    (hostile_run / "checkpoints").rename(hostile_run / "moved")
    (tmp_path / "other" / "checkpoints" / "latest.npz").write_bytes(b"another run's file")
    _link(tmp_path / "other" / "checkpoints", hostile_run / "checkpoints")
    assert R.run_files(hostile_run) == []
    with pytest.raises(R.UnsafeRunFile):
        R.read_run_file(hostile_run, "checkpoints/latest.npz")


@needs_links
def test_run_json_and_metrics_that_are_links_are_not_read(tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"status": "finished", "token": "s3cr3t"}))
    run = tmp_path / "runs" / "r"
    _link(secret, run / "run.json")
    lines = tmp_path / "secret.jsonl"
    lines.write_text(train_line(1))
    _link(lines, run / "metrics.jsonl")
    info, error = R.read_run_info(run)
    assert info == {} and "not a regular file inside the run directory" in error
    log = R.RunLog(run)
    assert log.update() == 0 and log.num_records == 0
    assert "metrics.jsonl" in log.refused and "not a regular file" in log.refused
    fifo = tmp_path / "runs" / "f"
    fifo.mkdir()
    os.mkfifo(fifo / "metrics.jsonl")
    assert R.RunLog(fifo).update() == 0  # refused at once, never blocks waiting for a writer


def test_an_oversized_run_json_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(listing, "MAX_RUN_JSON_BYTES", 1000)
    write_run_json(tmp_path / "r", "finished", notes="x" * 2000)
    info, error = R.read_run_info(tmp_path / "r")
    assert info == {} and "larger than" in error


# ---------------------------------------------------------------------------------- long lines
LONG = 40 * 2**20  # a line 40 times the cap


def _write_long_line(path, size: int, end: bool) -> None:
    """`size` bytes of one JSON-looking line, written in 1 MiB pieces (bounded memory here too)."""
    piece = b'{"step": 1, "junk": "' + b"x" * (2**20 - 21)
    with open(path, "ab") as f:
        for _ in range(size // len(piece)):
            f.write(piece)
        if end:
            f.write(b'"}\n')


def test_a_huge_complete_line_is_skipped_in_bounded_memory_and_reported(tmp_path):
    run = tmp_path / "r"
    write_metrics(run, steps=5, validation=False, grad_every=0)
    start = (run / "metrics.jsonl").stat().st_size
    _write_long_line(run / "metrics.jsonl", LONG, end=True)
    with open(run / "metrics.jsonl", "a") as f:
        f.write(train_line(6) + train_line(7))
    log = R.RunLog(run)
    tracemalloc.start()
    try:
        assert log.update() == 7
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < LONG / 4, f"peak {peak / 2**20:.1f} MiB while reading a {LONG / 2**20:.0f} MiB line"
    assert list(log.frame("train")["step"]) == [1, 2, 3, 4, 5, 6, 7]
    assert log.corrupt_lines == 1
    (bad,) = log.reader.corrupt
    assert (bad.line, bad.offset) == (6, start) and "longer than" in bad.reason and bad.length > LONG - 2**20
    read = log.reader.bytes_read
    assert log.update() == 0 and log.reader.bytes_read == read  # a refresh re-reads nothing


def test_a_huge_half_written_line_is_not_reread_on_refresh(tmp_path):
    run = tmp_path / "r"
    write_metrics(run, steps=3, validation=False, grad_every=0)
    start = (run / "metrics.jsonl").stat().st_size
    _write_long_line(run / "metrics.jsonl", LONG, end=False)  # the writer is still at it (or died)
    log = R.RunLog(run)
    tracemalloc.start()
    try:
        assert log.update() == 3
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < LONG / 4
    assert log.corrupt_lines == 1 and log.pending_bytes == 0
    (bad,) = log.reader.corrupt
    assert (bad.line, bad.offset) == (4, start) and "not ended yet" in bad.reason
    read = log.reader.bytes_read
    assert log.update() == 0 and log.reader.bytes_read == read  # nothing appended: nothing read
    with open(run / "metrics.jsonl", "a") as f:
        f.write('xx"}\n' + train_line(4))
    assert log.update() == 1 and log.reader.bytes_read - read == len('xx"}\n' + train_line(4))
    assert list(log.frame("train")["step"]) == [1, 2, 3, 4]
    assert log.corrupt_lines == 1 and "not ended yet" not in log.reader.corrupt[0].reason


def test_a_line_just_over_the_cap_inside_one_block_is_corrupt(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "MAX_LINE_BYTES", 200)
    run = tmp_path / "r"
    run.mkdir()
    long_record = json.dumps({"step": 2, "split": "train", "loss": 1.0, "pad": "x" * 300}) + "\n"
    (run / "metrics.jsonl").write_text(train_line(1) + long_record + "not json\n" + train_line(3))
    log = R.RunLog(run)
    assert log.update() == 2
    assert [(c.line, c.reason.split(" ")[0]) for c in log.reader.corrupt] == [(2, "longer"), (3, "not")]
    assert log.reader.corrupt[1].offset == len(train_line(1) + long_record)
