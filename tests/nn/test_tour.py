"""docs/tour.md runs: its ```python blocks are executed in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TOUR = Path(__file__).resolve().parents[2] / "docs" / "tour.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """Each ```python block of `text` with the line its code starts on."""
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in BLOCK.finditer(text)]


def test_the_tour_has_its_blocks():
    blocks = python_blocks(TOUR.read_text(encoding="utf-8"))
    assert len(blocks) >= 5
    assert python_blocks("a\n```python\nx = 1\n```\n```text\ny\n```\n") == [(3, "x = 1\n")]


def test_every_python_block_of_the_tour_runs(capsys):
    namespace: dict = {"__name__": "tour"}
    for line, code in python_blocks(TOUR.read_text(encoding="utf-8")):
        try:
            exec(compile(code, f"{TOUR}:{line}", "exec"), namespace)
        except Exception as error:  # name the block that failed
            pytest.fail(f"docs/tour.md, the block at line {line} raised {type(error).__name__}: {error}")
    out = capsys.readouterr().out
    assert "CrossEntropy -> Linear -> Reshape -> ReLU -> Conv2d" in out
