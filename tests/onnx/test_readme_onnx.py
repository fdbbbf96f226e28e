"""The Python example in kinone-onnx's README must really run."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "packages" / "kinone-onnx" / "README.md"


def test_readme_python_example_runs(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the example writes resnet18.onnx into the working directory
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no python example"
    namespace = {"__name__": "readme_example"}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert "over batch sizes [2, 3]" in capsys.readouterr().out
    assert (tmp_path / "resnet18.onnx").is_file()
    assert set(namespace["again"].state_dict()) <= set(namespace["model"].state_dict())
