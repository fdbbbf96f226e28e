"""The kinone-nn README's "where the math is" table is what tools/math_table.py generates from
the code: every public op of kinone.nn.functional, its Functions and their files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "math_table.py"


@pytest.fixture(scope="module")
def math_table():
    if not TOOL.is_file():
        pytest.skip("tools/math_table.py is not in this checkout")
    spec = importlib.util.spec_from_file_location("math_table", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_table_is_the_generated_one(math_table):
    current = math_table.readme_table(math_table.README.read_text(encoding="utf-8"))
    assert current is not None, "packages/kinone-nn/README.md lost its math-table block"
    assert current == math_table.table(), (
        "packages/kinone-nn/README.md's 'where the math is' table is out of date: run python tools/math_table.py --write"
    )


def test_every_public_op_has_a_row_and_every_function_its_math(math_table):
    from kinone.nn import functional as F

    rows = math_table.rows()
    assert [op.strip("`") for op, _, _ in rows] == sorted(F.__all__)
    conv = next(row for row in rows if row[0] == "`conv2d`")
    assert conv[1] == "`Conv2d`" and "functional/conv.py" in conv[2]
    relu = next(row for row in rows if row[0] == "`relu`")  # delegates to Tensor.relu: autograd's ReLU
    assert relu[1] == "`ReLU`" and "kinone-autograd" in relu[2]
    for op in ("conv2d", "linear", "cross_entropy", "batch_norm", "max_pool2d"):
        for cls in math_table.applied_functions(getattr(F, op)):
            assert "dL/d" in (cls.__doc__ or ""), f"{op}: {cls.__name__} has no gradient math in its docstring"


def test_a_function_applied_through_a_helper_is_found(math_table):
    from kinone.autograd import Function

    class Double(Function):
        """y = 2x;  dL/dx = 2g."""

    def _helper(x):
        return Double.apply(x)

    def op(x):
        y = _helper(x)
        return y

    op.__globals__["_helper"], op.__globals__["Double"] = _helper, Double
    try:
        assert math_table.applied_functions(op) == [Double]
    finally:
        del op.__globals__["_helper"], op.__globals__["Double"]
