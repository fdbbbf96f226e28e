"""The Python examples in the root README and in kinone-autograd's README must really run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("readme", ["README.md", "packages/kinone-autograd/README.md"])
def test_readme_python_examples_run(readme, capsys):
    path = ROOT / readme
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)
    assert blocks, f"{readme} has no python example"
    for block in blocks:
        exec(compile(block, str(path), "exec"), {"__name__": "readme_example"})
    assert capsys.readouterr().out, f"{readme}'s examples printed nothing"
