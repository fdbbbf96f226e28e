"""The Python example in kinone-data's README must really run."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "packages" / "kinone-data" / "README.md"


def test_readme_python_example_runs(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the example's sample goes here
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {"__name__": "readme_example"})
    out = capsys.readouterr().out
    assert "'Atelectasis'" in out and "'epoch': 2" in out
