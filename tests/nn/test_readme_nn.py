"""kinone-nn's README example must really run."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "packages" / "kinone-nn" / "README.md"


def test_readme_example_runs(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block.replace("/tmp/model.npz", str(tmp_path / "model.npz")), str(README), "exec"), {})
    assert "0.weight" in capsys.readouterr().out
