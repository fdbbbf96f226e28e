"""Every converter on a small model: export, full checker, onnxruntime against Kinone.

`CASES` maps each Kinone Function to small models that call it (a callable of one input and
the input's shape, optionally export options); families may keep theirs beside this file in
`cases_<family>.py` modules (a `CASES` dict each, merged in). Each case is exported and verified, which
also runs a batch of another size. A meta-test fails when a Function of kinone.autograd or
kinone.nn has neither a case here nor a place on the training-only list.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from kinone import nn
from kinone import onnx as kinone_onnx
from kinone.autograd import Tensor, cat, functions_in, maximum, minimum, stack, trace, where
from kinone.autograd.backend import Device
from kinone.autograd.ops import arithmetic as A
from kinone.autograd.ops import elementwise as E
from kinone.autograd.ops import indexing as I
from kinone.autograd.ops import joining as J
from kinone.autograd.ops import matmul as M
from kinone.autograd.ops import reduction as R
from kinone.autograd.ops import shape as S
from kinone.autograd.ops import softmax as SM
from kinone.autograd.ops.device import ToDevice
from kinone.nn import functional as F
from kinone.nn.functional import activation as ACT
from kinone.nn.functional import conv as CONV
from kinone.nn.functional import normalization as NORM
from kinone.nn.functional import pooling as POOL
from kinone.nn.functional.linear import Linear as LinearFunction
from kinone.onnx.registry import CONVERTERS, TRAINING_ONLY

_rng = np.random.default_rng(42)


def const(*shape, low=-1.0, high=1.0):
    return Tensor(_rng.uniform(low, high, shape).astype(np.float32))


W23, W34, B3 = const(3, 4), const(4, 3), const(3)
IMG = (2, 3, 6, 6)


def conv_layer(**kwargs):
    layer = nn.Conv2d(kwargs.pop("cin", 3), kwargs.pop("cout", 4), kwargs.pop("k", 3), **kwargs)
    return layer


def batch_norm(features, affine=True):
    layer = nn.BatchNorm2d(features, affine=affine) if features != "1d" else nn.BatchNorm1d(4)
    for name, buffer in layer.named_buffers():
        if name == "running_mean":
            buffer.data[...] = _rng.normal(0, 0.5, buffer.shape)
        elif name == "running_var":
            buffer.data[...] = _rng.uniform(0.5, 2.0, buffer.shape)
    for param in layer.parameters():
        param.data[...] = _rng.uniform(0.5, 1.5, param.shape)
    return layer.eval()


CASES = {
    A.Add: [(lambda x: x + 1.5, (2, 3)), (lambda x: x + B3, (2, 4, 3))],
    A.Sub: [(lambda x: 2.0 - x, (2, 3)), (lambda x: x - B3, (2, 3))],
    A.Mul: [(lambda x: x * B3, (2, 3)), (lambda x: x * x, (2, 3))],
    A.Div: [(lambda x: x / 3.0, (2, 3)), (lambda x: B3 / (x.abs() + 1), (2, 3))],
    A.Neg: [(lambda x: -x, (2, 3))],
    A.Pow: [(lambda x: x**2, (2, 3)), (lambda x: (x.abs() + 0.5) ** 1.5, (2, 3))],
    J.Maximum: [(lambda x: maximum(x, 0.25), (2, 3))],
    J.Minimum: [(lambda x: minimum(x, B3), (2, 3))],
    J.Where: [(lambda x: where(Tensor(np.array([True, False, True])), x, 0.0), (2, 3))],
    M.MatMul: [
        (lambda x: x @ W34, (2, 4)),
        (lambda x: x @ W34, (2, 5, 4)),
        (lambda x: W23 @ x, (2, 4, 5)),
        (lambda x: x @ Tensor(np.ones(4, np.float32)), (2, 4)),
    ],
    E.Exp: [(lambda x: x.exp(), (2, 3))],
    E.Log: [(lambda x: (x.abs() + 0.1).log(), (2, 3))],
    E.Sqrt: [(lambda x: (x.abs() + 0.1).sqrt(), (2, 3))],
    E.Tanh: [(lambda x: x.tanh(), (2, 3))],
    E.Sigmoid: [(lambda x: x.sigmoid(), (2, 3))],
    E.ReLU: [(lambda x: x.relu(), (2, 3))],
    E.Abs: [(lambda x: x.abs(), (2, 3))],
    E.Clip: [
        (lambda x: x.clamp(-0.5, 0.5), (2, 3)),
        (lambda x: x.clamp(min=0.0), (2, 3)),
        (lambda x: x.clamp(max=0.1), (2, 3)),
    ],
    E.Cast: [(lambda x: x.to(np.float64) * 2, (2, 3))],
    ToDevice: [(lambda x: ToDevice.apply(x, device=Device("cpu")) * 2, (2, 3))],
    ACT.SiLU: [(F.silu, (2, 3))],
    ACT.GELU: [(F.gelu, (2, 3)), (F.gelu, (2, 3), {"opset": 20})],
    ACT.Erf: [(F.erf, (2, 3))],
    S.Reshape: [
        (lambda x: x.flatten(1), IMG),
        (lambda x: x.reshape(x.shape[0], 3, 36), IMG),
        (lambda x: x.unsqueeze(0), (2, 3)),
        (lambda x: x.reshape(6, -1), (2, 3), {"dynamic_batch": False}),
        (lambda x: x.unsqueeze(-1), (2, 3)),
    ],
    S.Permute: [(lambda x: x.permute(0, 2, 3, 1), IMG), (lambda x: x.transpose(0, 1) * 2, (2, 3))],
    S.Expand: [
        (lambda x: x.expand(x.shape[0], 3, 4), (2, 3, 1)),
        (lambda x: x.sum(1, keepdim=True).expand(-1, 3), (2, 3)),
    ],
    J.Cat: [
        (lambda x: cat([x, x * 2], dim=1), (2, 3)),
        (lambda x: cat([x, x], dim=0), (2, 3), {"dynamic_batch": False}),
    ],
    J.Stack: [(lambda x: stack([x, -x], dim=1), (2, 3)), (lambda x: stack([x, x], dim=0), (2, 3))],
    I.GetItem: [
        (lambda x: x[:, 0], IMG),
        (lambda x: x[..., 1:4, ::2], IMG),
        (lambda x: x[:, None, -1], (2, 3)),
        (lambda x: x[:, ::-1], (2, 5)),
        (lambda x: x[...] * 2, (2, 5)),
    ],
    R.Sum: [
        (lambda x: x.sum(1), (2, 3, 4)),
        (lambda x: x.sum((1, 2), keepdim=True), (2, 3, 4)),
        (lambda x: x.sum(), (2, 3)),
    ],
    R.Mean: [
        (lambda x: x.mean(-1), (2, 3, 4)),
        (lambda x: x.mean(), (2, 3)),
        (lambda x: x.mean(1), (2, 3), {"opset": 18}),
    ],
    R.Amax: [(lambda x: x.amax(1), (2, 3, 4)), (lambda x: x.max(), (2, 3))],
    R.Amin: [(lambda x: x.amin(2, keepdim=True), (2, 3, 4))],
    R.Var: [(lambda x: x.var(1), (2, 5)), (lambda x: x.var(), (2, 5)), (lambda x: x.var(0, correction=0), (3, 4))],
    R.LogSumExp: [(lambda x: x.logsumexp(1), (2, 5))],
    SM.Softmax: [(lambda x: x.softmax(1), (2, 5)), (lambda x: x.softmax(0), (2, 5))],
    SM.LogSoftmax: [(lambda x: x.log_softmax(-1), (2, 5))],
    LinearFunction: [
        (nn.Linear(4, 3), (2, 4)),
        (nn.Linear(4, 3), (2, 5, 4)),
        (nn.Linear(4, 3, bias=False), (2, 4)),
        (nn.Linear(4, 3, bias=False), (2, 5, 4)),
    ],
    CONV.Conv2d: [
        (conv_layer(), IMG),
        (conv_layer(stride=2, padding=1), IMG),
        (conv_layer(padding=2, dilation=2, bias=False), IMG),
        (conv_layer(cin=4, cout=6, groups=2, padding=1), (2, 4, 6, 6)),
        (conv_layer(cin=3, cout=6, groups=3, padding=1, stride=(2, 1)), IMG),
        (conv_layer(k=1), IMG),
        (conv_layer(k=(3, 1), padding=(1, 0)), IMG),
    ],
    NORM.BatchNormEval: [(batch_norm(3), IMG), (batch_norm(3, affine=False), IMG), (batch_norm("1d"), (2, 4))],
    POOL.MaxPool2d: [
        (nn.MaxPool2d(2), IMG),
        (nn.MaxPool2d(3, 2, padding=1), IMG),
        (nn.MaxPool2d(3, 2, ceil_mode=True), (2, 3, 8, 8)),
        (lambda x: F.max_pool2d(x, 2, 1, dilation=2), IMG),
    ],
    POOL.AvgPool2d: [
        (nn.AvgPool2d(2), IMG),
        (nn.AvgPool2d(3, 2, padding=1), IMG),
        (nn.AvgPool2d(3, 2, padding=1, count_include_pad=False), IMG),
        (nn.AvgPool2d(3, 2, ceil_mode=True), (2, 3, 8, 8)),
        (lambda x: F.avg_pool2d(x, 2, divisor_override=3), IMG),
    ],
    POOL.AdaptiveAvgPool2d: [
        (nn.AdaptiveAvgPool2d(1), IMG),
        (nn.AdaptiveAvgPool2d((3, 2)), IMG),
        (nn.AdaptiveAvgPool2d((4, 5)), IMG),
    ],
}


def _merge_case_modules(cases: dict) -> dict:
    """Add the `CASES` of every `cases_*.py` beside this file."""
    import importlib.util
    from pathlib import Path

    for path in sorted(Path(__file__).parent.glob("cases_*.py")):
        spec = importlib.util.spec_from_file_location(f"kinone_onnx_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for cls, entries in module.CASES.items():
            cases.setdefault(cls, []).extend(entries)
    return cases


CASES = _merge_case_modules(CASES)
CASE_LIST = [(cls, i, case) for cls, cases in CASES.items() for i, case in enumerate(cases)]


def test_every_function_has_a_converter_case_or_is_training_only():
    functions = functions_in("kinone.autograd") | functions_in("kinone.nn")
    missing = sorted(f.__qualname__ for f in functions - set(CASES) - set(TRAINING_ONLY))
    assert not missing, f"Functions with neither an exporter test case nor a training-only reason: {missing}"
    untested = sorted(f.__qualname__ for f in set(CONVERTERS) - set(CASES))
    assert not untested, f"converters without a test case: {untested}"
    assert not set(CONVERTERS) & set(TRAINING_ONLY)


@pytest.mark.parametrize(
    "function, case", [(c, case) for c, _, case in CASE_LIST], ids=[f"{c.__name__}-{i}" for c, i, _ in CASE_LIST]
)
def test_converter(function, case, tmp_path):
    fn, shape, options = case if len(case) == 3 else (*case, {})
    x = Tensor(np.random.default_rng(1).standard_normal(shape).astype(np.float32))
    with trace() as records:
        fn(x)
    assert function in {r.function for r in records}, f"the case does not call {function.__name__}"
    path = tmp_path / "case.onnx"
    proto = kinone_onnx.export(fn, x, path, **options)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert proto.opset_import[0].version == options.get("opset", 17)
    report = kinone_onnx.verify(fn, path, x)
    n = shape[0]
    expected_sizes = [n] if options.get("dynamic_batch") is False else [n, n + 1]
    assert report.batch_sizes == expected_sizes


@pytest.mark.parametrize("opset", [13, 17, 18, 20, 21])
def test_opset_dependent_forms(opset, tmp_path):
    """Reductions (axes an attribute, then an input from 18), GELU (an operator from 20),
    Squeeze/Unsqueeze, at every opset whose forms differ. (Newer opsets export too, 28 with onnx
    1.23, but whether they run depends on the onnxruntime release, so they are not pinned here.)"""

    def fn(x):
        pooled = x.mean((2, 3)) + x.amax(1).sum(-1).mean(-1, keepdim=True)
        spread = F.gelu(x).var(1).mean((1, 2)).unsqueeze(1) + x.logsumexp(1).amin((1, 2)).unsqueeze(1)
        return (pooled + spread)[:, 0]

    x = Tensor(np.random.default_rng(3).standard_normal((2, 3, 4, 4)).astype(np.float32))
    proto = kinone_onnx.export(fn, x, tmp_path / "m.onnx", opset=opset)
    assert proto.opset_import[0].version == opset
    assert kinone_onnx.verify(fn, tmp_path / "m.onnx", x).batch_sizes == [2, 3]
