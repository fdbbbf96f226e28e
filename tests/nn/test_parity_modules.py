"""Layers against torch.nn: the same state-dict keys and shapes, and, with torch's weights
loaded by name, the same outputs and gradients."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kinone import nn  # noqa: E402
from kinone.autograd import Tensor  # noqa: E402

LAYERS = [
    ("Linear", lambda m: m.Linear(5, 3), (4, 5)),
    ("Linear_nobias", lambda m: m.Linear(5, 3, bias=False), (2, 6, 5)),
    ("Conv2d", lambda m: m.Conv2d(3, 4, 3, stride=2, padding=1), (2, 3, 9, 9)),
    ("Conv2d_depthwise", lambda m: m.Conv2d(4, 4, 3, padding=1, groups=4, bias=False), (2, 4, 6, 6)),
    ("BatchNorm2d", lambda m: m.BatchNorm2d(3), (4, 3, 5, 5)),
    ("BatchNorm1d", lambda m: m.BatchNorm1d(3), (6, 3)),
    ("MaxPool2d", lambda m: m.MaxPool2d(3, stride=2, padding=1), (2, 2, 7, 7)),
    ("AvgPool2d", lambda m: m.AvgPool2d(2), (2, 2, 6, 6)),
    ("AdaptiveAvgPool2d", lambda m: m.AdaptiveAvgPool2d(1), (2, 3, 5, 5)),
    ("Flatten", lambda m: m.Flatten(), (2, 3, 4)),
    ("ReLU", lambda m: m.ReLU(), (3, 4)),
    ("SiLU", lambda m: m.SiLU(), (3, 4)),
    ("GELU", lambda m: m.GELU(), (3, 4)),
    ("Sigmoid", lambda m: m.Sigmoid(), (3, 4)),
    ("Tanh", lambda m: m.Tanh(), (3, 4)),
    ("Identity", lambda m: m.Identity(), (3, 4)),
    ("Dropout_eval", lambda m: m.Dropout(0.3).eval(), (3, 4)),
    (
        "Sequential",
        lambda m: m.Sequential(
            m.Conv2d(1, 2, 3), m.BatchNorm2d(2), m.ReLU(), m.AdaptiveAvgPool2d(1), m.Flatten(), m.Linear(2, 3)
        ),
        (2, 1, 6, 6),
    ),
]


def _pair(make):
    ours, theirs = make(nn), make(torch.nn).double()
    ours.to(np.float64)
    return ours, theirs


@pytest.mark.parametrize("make, shape", [(m, s) for _, m, s in LAYERS], ids=[n for n, _, _ in LAYERS])
def test_state_dict_keys_shapes_and_outputs_match(make, shape):
    ours, theirs = _pair(make)
    torch_sd = theirs.state_dict()
    assert list(ours.state_dict()) == list(torch_sd)
    for key, value in ours.state_dict().items():
        assert value.shape == tuple(torch_sd[key].shape), key
    ours.load_state_dict({k: v.numpy() for k, v in torch_sd.items()})

    x = np.random.default_rng(0).standard_normal(shape)
    x_ours, x_torch = Tensor(x.copy(), requires_grad=True), torch.tensor(x, requires_grad=True)
    out_ours, out_torch = ours(x_ours), theirs(x_torch)
    grad = np.random.default_rng(1).standard_normal(out_torch.shape)
    np.testing.assert_allclose(out_ours.data, out_torch.detach().numpy(), rtol=1e-7, atol=1e-9)
    out_ours.backward(grad)
    out_torch.backward(torch.tensor(grad))
    np.testing.assert_allclose(x_ours.grad.data, x_torch.grad.numpy(), rtol=1e-7, atol=1e-9)
    named_torch = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.data, named_torch[name].grad.numpy(), rtol=1e-7, atol=1e-9, err_msg=name)
    # Running statistics after a training-mode forward match too.
    for key, value in ours.state_dict().items():
        np.testing.assert_allclose(value, torch_sd[key].numpy(), rtol=1e-7, atol=1e-9, err_msg=key)


@pytest.mark.parametrize(
    "make",
    [
        lambda m: m.ModuleList([m.Linear(2, 3), m.ReLU(), m.BatchNorm1d(3)]),
        lambda m: m.ModuleDict({"conv": m.Conv2d(1, 2, 3), "bn": m.BatchNorm2d(2)}),
        lambda m: m.Sequential(m.Sequential(m.Linear(2, 2)), m.ModuleList([m.Linear(2, 2)])),
        lambda m: m.CrossEntropyLoss(weight=np.ones(3) if m is nn else torch.ones(3)),
        lambda m: m.NLLLoss(),
        lambda m: m.Softmax(dim=1),
        lambda m: m.LogSoftmax(dim=1),
    ],
    ids=["ModuleList", "ModuleDict", "nested", "CrossEntropyLoss_weight", "NLLLoss", "Softmax", "LogSoftmax"],
)
def test_container_and_loss_state_dict_keys_match(make):
    ours, theirs = make(nn), make(torch.nn)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]


def test_loss_modules_match_torch():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((6, 4))
    target = rng.integers(0, 4, 6)
    weight = rng.uniform(0.5, 2, 4)
    multi = (rng.random((6, 4)) > 0.5).astype(np.float64)
    cases = [
        (
            nn.CrossEntropyLoss(weight=weight, label_smoothing=0.1),
            torch.nn.CrossEntropyLoss(weight=torch.tensor(weight), label_smoothing=0.1),
            target,
        ),
        (nn.BCEWithLogitsLoss(pos_weight=weight), torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(weight)), multi),
        (nn.MSELoss(), torch.nn.MSELoss(), multi),
    ]
    for ours, theirs, tgt in cases:
        assert list(ours.state_dict()) == list(theirs.state_dict())
        a = ours(Tensor(logits.copy()), Tensor(tgt))
        b = theirs(torch.tensor(logits), torch.tensor(tgt))
        np.testing.assert_allclose(a.data, b.numpy(), rtol=1e-7)


def test_default_init_distributions_match_torch():
    from kinone.autograd import manual_seed

    manual_seed(0)
    torch.manual_seed(0)
    for ours, theirs in [
        (nn.Linear(256, 128), torch.nn.Linear(256, 128)),
        (nn.Conv2d(32, 64, 3), torch.nn.Conv2d(32, 64, 3)),
    ]:
        for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
            a, b = p.data, q.detach().numpy()
            assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
            bound = 1 / np.sqrt(np.prod(a.shape[1:])) if name == "weight" else None
            if name == "weight":  # many samples: the spread must agree closely
                assert np.abs(a).max() <= bound and np.abs(b).max() <= bound
                assert abs(a.std() - b.std()) / b.std() < 0.03, name
            else:  # biases share the weight's fan-in bound
                fan_in = np.prod(ours.weight.shape[1:])
                assert np.abs(a).max() <= 1 / np.sqrt(fan_in) and np.abs(b).max() <= 1 / np.sqrt(fan_in)
