"""`kinone.onnx.load`: export -> load gives a Module with the same outputs, the same
state-dict keys, and gradients that fine-tune it."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from kinone import models, nn, optim
from kinone import onnx as kinone_onnx
from kinone.autograd import Tensor, no_grad
from kinone.nn import functional as F


def _round_trip(model, x, tmp_path, **options):
    path = tmp_path / "m.onnx"
    kinone_onnx.export(model, x, path, **options)
    loaded = kinone_onnx.load(path).eval()
    with no_grad():
        want = model(x)
        got = loaded(x)
    return loaded, want, got


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0"])
def test_model_zoo_round_trip(name, tmp_path, calibrated):
    rng = np.random.default_rng(0)
    model = models.get_model(name, num_classes=5, in_channels=1)
    calibrated(model, Tensor(rng.standard_normal((8, 1, 32, 32)).astype(np.float32)))
    x = Tensor(rng.standard_normal((3, 1, 32, 32)).astype(np.float32))
    loaded, want, got = _round_trip(model, x, tmp_path)
    np.testing.assert_allclose(got.data, want.data, rtol=1e-5, atol=1e-5)
    # Same keys (what the graph uses) and the same arrays: the weights load into the original class.
    original = model.state_dict()
    state = loaded.state_dict()
    assert set(state) <= set(original) and {k for k in original if not k.endswith("num_batches_tracked")} == set(state)
    fresh = models.get_model(name, num_classes=5, in_channels=1)
    fresh.load_state_dict({**fresh.state_dict(), **state})
    with no_grad():
        np.testing.assert_allclose(fresh.eval()(x).data, want.data, rtol=1e-5, atol=1e-5)
    assert dict(loaded.named_buffers()).keys() == {k for k in state if k.endswith(("running_mean", "running_var"))}


def test_a_loaded_model_fine_tunes(tmp_path):
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )
    x = Tensor(np.random.default_rng(1).standard_normal((8, 1, 6, 6)).astype(np.float32))
    target = Tensor(np.array([0, 1] * 4))
    kinone_onnx.export(model, x, tmp_path / "m.onnx")
    loaded = kinone_onnx.load(tmp_path / "m.onnx").train()
    # In training mode both use batch statistics: the same loss and the same gradients.
    loss_a, loss_b = F.cross_entropy(model.train()(x), target), F.cross_entropy(loaded(x), target)
    loss_a.backward(), loss_b.backward()
    np.testing.assert_allclose(loss_b.item(), loss_a.item(), rtol=1e-6)
    grads = {k: p.grad.data for k, p in loaded.named_parameters()}
    for key, p in model.named_parameters():
        np.testing.assert_allclose(grads[key], p.grad.data, rtol=1e-4, atol=1e-6)
    opt = optim.SGD(loaded.parameters(), lr=0.5)
    first = None
    for _ in range(20):
        loss = F.cross_entropy(loaded(x), target)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first


ROUND_TRIP = {
    "shapes": (lambda x: (x[:, 1:, ::2].permute(0, 2, 1).flatten(1) * 2).unsqueeze(1).expand(-1, 3, -1), (2, 3, 4)),
    "reductions": (lambda x: x.var(1) + x.logsumexp(1) - x.amax(1) + x.mean(1) * x.sum(1) - x.amin(1), (2, 5)),
    "softmax": (lambda x: x.softmax(1) + x.log_softmax(-1).exp(), (2, 5)),
    "elementwise": (
        lambda x: (x.abs() + 1).log().sqrt().tanh() + x.sigmoid().clamp(0.2, 0.7) - (-x).relu() ** 2,
        (2, 3),
    ),
    "gelu-opset20": (F.gelu, (2, 3), {"opset": 20}),
    "gelu-opset17-as-erf": (F.gelu, (2, 3)),
    "silu-pooling": (
        lambda x: F.avg_pool2d(F.max_pool2d(F.silu(x), 2, ceil_mode=True), 2, count_include_pad=False),
        (2, 2, 7, 7),
    ),
    "adaptive": (lambda x: F.adaptive_avg_pool2d(x, (4, 3)) + F.adaptive_avg_pool2d(x, 1), (2, 2, 6, 6)),
    "linear-3d": (nn.Linear(4, 3), (2, 5, 4)),
    "cast": (lambda x: x.to(np.float64) / 3, (2, 3)),
}


@pytest.mark.parametrize("case", list(ROUND_TRIP), ids=list(ROUND_TRIP))
def test_op_round_trip(case, tmp_path):
    fn, shape, options = ROUND_TRIP[case] if len(ROUND_TRIP[case]) == 3 else (*ROUND_TRIP[case], {})
    x = Tensor(np.random.default_rng(2).standard_normal(shape).astype(np.float32))
    _, want, got = _round_trip(fn, x, tmp_path, **options)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got.data, want.data, rtol=1e-5, atol=1e-6)


def test_a_model_from_elsewhere_with_gemm_and_dropout():
    """A graph as other exporters write it: Gemm with transB, a Dropout with its ratio input."""
    w = np.arange(6, dtype=np.float32).reshape(2, 3) / 10
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1),
            helper.make_node("Dropout", ["h", "ratio"], ["y"]),
        ],
        "external",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])],
        initializer=[
            helper.make_tensor("w", TensorProto.FLOAT, [2, 3], w.ravel()),
            helper.make_tensor("b", TensorProto.FLOAT, [2], [1.0, -1.0]),
            helper.make_tensor("ratio", TensorProto.FLOAT, [], [0.5]),
        ],
    )
    model = kinone_onnx.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])).eval()
    x = np.ones((4, 3), np.float32)
    np.testing.assert_allclose(model(Tensor(x)).data, x @ w.T + [1.0, -1.0], rtol=1e-6)
    assert {k for k, _ in model.named_parameters()} == {"w", "b", "ratio"}


def test_unknown_operators_are_listed():
    graph = helper.make_graph(
        [helper.make_node("Celu", ["x"], ["y"], name="celu0"), helper.make_node("HardSwish", ["y"], ["z"], name="hs")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])],
    )
    with pytest.raises(ValueError, match=r"no Kinone form for: Celu \(nodes 'celu0'\); HardSwish \(nodes 'hs'\)"):
        kinone_onnx.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
