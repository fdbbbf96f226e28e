"""Parity with torch.nn: layer norm, group norm, instance norm (functional and modules:
outputs, gradients of input, weight and bias, running statistics, state-dict keys) and
embedding (padding_idx, scale_grad_by_freq, max_norm, from_pretrained); float64 to 1e-7,
float32 to 1e-4.
"""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

from kinone import nn  # noqa: E402
from kinone.autograd import Tensor  # noqa: E402
from kinone.nn import functional as F  # noqa: E402

TOLERANCES = {np.float64: (1e-7, 1e-10), np.float32: (1e-4, 1e-5)}
DTYPES = [np.float64, np.float32]


def seed(case) -> int:
    return zlib.crc32(repr(case).encode())


def check(ours, theirs, dtype, what):
    rtol, atol = TOLERANCES[dtype]
    ours = ours.data if isinstance(ours, Tensor) else ours
    theirs = theirs.detach().numpy()
    assert ours.dtype == theirs.dtype == dtype, f"{what}: dtypes {ours.dtype} and {theirs.dtype}, expected {dtype}"
    assert ours.shape == theirs.shape, f"{what}: shapes {ours.shape} and {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, err_msg=what)


def pair(array, dtype, requires_grad=True):
    array = np.asarray(array).astype(dtype)
    return Tensor(array.copy(), requires_grad=requires_grad), torch.tensor(array.copy(), requires_grad=requires_grad)


def run_both(fn_k, fn_t, x, params, dtype, rng):
    """Forward both, backward the same random upstream gradient, compare output and every gradient."""
    x_k, x_t = pair(x, dtype)
    given = [pair(p, dtype) if p is not None else (None, None) for p in params]
    y_k = fn_k(x_k, *[k for k, _ in given])
    y_t = fn_t(x_t, *[t for _, t in given])
    check(y_k, y_t, dtype, "output")
    upstream = rng.standard_normal(y_t.shape).astype(dtype)
    (y_k * Tensor(upstream)).sum().backward()
    (y_t * torch.tensor(upstream)).sum().backward()
    check(x_k.grad, x_t.grad, dtype, "input gradient")
    for i, (k, t) in enumerate(given):
        if k is not None:
            check(k.grad, t.grad, dtype, f"gradient of parameter {i}")


AFFINE = [(True, True), (True, False), (False, True), (False, False)]
LN_SHAPES = [((4, 6), (6,)), ((2, 3, 5), (5,)), ((2, 3, 4, 5), (4, 5)), ((3, 70), (70,))]


@pytest.mark.parametrize("shapes, affine, dtype", list(itertools.product(LN_SHAPES, AFFINE, DTYPES)))
def test_layer_norm(shapes, affine, dtype):
    shape, normalized = shapes
    rng = np.random.default_rng(seed((shapes, affine)))
    x = rng.standard_normal(shape) * 3 + 2
    w = rng.uniform(0.5, 1.5, normalized) if affine[0] else None
    b = rng.standard_normal(normalized) if affine[1] else None
    run_both(
        lambda x, w, b: F.layer_norm(x, normalized, w, b, eps=1e-4),
        lambda x, w, b: TF.layer_norm(x, normalized, w, b, eps=1e-4),
        x,
        [w, b],
        dtype,
        rng,
    )


GN_CASES = [((4, 6), 3), ((2, 6, 5), 2), ((2, 4, 3, 3), 4), ((2, 4, 3, 3), 1), ((2, 6, 2, 2, 3), 3)]


@pytest.mark.parametrize("case, affine, dtype", list(itertools.product(GN_CASES, AFFINE, DTYPES)))
def test_group_norm(case, affine, dtype):
    shape, groups = case
    rng = np.random.default_rng(seed((case, affine)))
    x = rng.standard_normal(shape) * 2 - 1
    w = rng.uniform(0.5, 1.5, shape[1]) if affine[0] else None
    b = rng.standard_normal(shape[1]) if affine[1] else None
    run_both(
        lambda x, w, b: F.group_norm(x, groups, w, b, eps=1e-3),
        lambda x, w, b: TF.group_norm(x, groups, torch_weight(w, b), b, eps=1e-3),
        x,
        [w, b],
        dtype,
        rng,
    )


def torch_weight(w, b):
    """torch 2.13's group_norm backward fails ("tensor does not have a device") given a bias
    without a weight: there, a weight of ones (a constant) stands for the absent one."""
    if w is None and b is not None:
        return torch.ones(b.shape, dtype=b.dtype)
    return w


@pytest.mark.parametrize("shape, dtype", list(itertools.product([(3, 4, 5), (2, 3, 4, 5)], DTYPES)))
def test_instance_norm_functional_with_running_stats(shape, dtype):
    rng = np.random.default_rng(seed(shape))
    channels = shape[1]
    mean0, var0 = rng.standard_normal(channels), rng.uniform(0.5, 2, channels)
    rm_k, rm_t = pair(mean0, dtype, False)
    rv_k, rv_t = pair(var0, dtype, False)
    w, b = rng.uniform(0.5, 1.5, channels), rng.standard_normal(channels)
    run_both(
        lambda x, w, b: F.instance_norm(x, rm_k, rv_k, w, b, momentum=0.3),
        lambda x, w, b: TF.instance_norm(x, rm_t, rv_t, w, b, momentum=0.3),
        rng.standard_normal(shape),
        [w, b],
        dtype,
        rng,
    )
    check(rm_k, rm_t, dtype, "running_mean")
    check(rv_k, rv_t, dtype, "running_var")
    run_both(
        lambda x: F.instance_norm(x, rm_k, rv_k, use_input_stats=False),
        lambda x: TF.instance_norm(x, rm_t, rv_t, use_input_stats=False),
        rng.standard_normal(shape),
        [],
        dtype,
        rng,
    )


def copy_parameters(ours, theirs):
    ours.load_state_dict({name: value.numpy() for name, value in theirs.state_dict().items()})


MODULE_CASES = [
    (lambda m: m.LayerNorm(5), (2, 3, 5)),
    (lambda m: m.LayerNorm((3, 5), elementwise_affine=False), (2, 3, 5)),
    (lambda m: m.LayerNorm(5, bias=False), (4, 5)),
    (lambda m: m.GroupNorm(2, 4), (3, 4, 5)),
    (lambda m: m.GroupNorm(2, 4, affine=False), (3, 4, 2, 2)),
    (lambda m: m.InstanceNorm1d(3), (2, 3, 6)),
    (lambda m: m.InstanceNorm1d(3, affine=True), (3, 6)),  # unbatched
    (lambda m: m.InstanceNorm2d(3, affine=True, track_running_stats=True), (2, 3, 4, 4)),
    (lambda m: m.InstanceNorm2d(3, momentum=None, track_running_stats=True), (3, 4, 4)),  # unbatched
    (lambda m: m.InstanceNorm3d(2, affine=True), (2, 2, 3, 3, 3)),
]


@pytest.mark.parametrize("make, shape", MODULE_CASES, ids=[f"case{i}" for i in range(len(MODULE_CASES))])
def test_modules_match_torch(make, shape):
    """State-dict keys and shapes, then two training steps (running statistics too) and eval."""
    rng = np.random.default_rng(seed(shape))
    ours, theirs = make(nn), make(torch.nn)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in theirs.state_dict().items()
    ]
    with torch.no_grad():
        for p in theirs.parameters():
            p.uniform_(0.5, 1.5)
    copy_parameters(ours, theirs)
    for mode in ("train", "train", "eval"):
        getattr(ours, mode)(), getattr(theirs, mode)()
        run_both(lambda x: ours(x), lambda x: theirs(x), rng.standard_normal(shape) + 1, [], np.float32, rng)
        ours_state = ours.state_dict()
        for name, value in theirs.state_dict().items():
            ours_value = ours_state[name]
            ours_value = ours_value.data if isinstance(ours_value, Tensor) else ours_value
            if value.dtype.is_floating_point:
                check(ours_value, value, np.float32, name)
            else:  # num_batches_tracked
                assert int(ours_value) == int(value), name
    for (name, p_k), (_, p_t) in zip(ours.named_parameters(), theirs.named_parameters()):
        check(p_k.grad, p_t.grad, np.float32, f"{name}.grad")


def test_norm_errors_name_the_op_and_shape():
    x = Tensor(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(
        ValueError, match=r"layer_norm: input of shape \(2, 3, 4\) does not end in normalized_shape \[3\]"
    ):
        F.layer_norm(x, 3)
    with pytest.raises(ValueError, match="group_norm: the 3 channels .* num_groups=2"):
        F.group_norm(x, 2)
    with pytest.raises(ValueError, match=r"layer_norm: weight of shape \(3,\) does not match: expected \(4,\)"):
        F.layer_norm(x, 4, Tensor(np.ones(3, np.float32)))
    with pytest.raises(ValueError, match="GroupNorm: num_channels"):
        nn.GroupNorm(2, 3)
    with pytest.raises(ValueError, match="instance_norm: expected more than 1 spatial element"):
        F.instance_norm(Tensor(np.zeros((2, 3, 1), np.float32)))


# ---------------------------------------------------------------------------- embedding
EMB_CASES = [
    dict(),
    dict(padding_idx=2),
    dict(padding_idx=-1),
    dict(scale_grad_by_freq=True),
    dict(padding_idx=0, scale_grad_by_freq=True),
]


@pytest.mark.parametrize("options, dtype", list(itertools.product(EMB_CASES, DTYPES)), ids=lambda v: str(v))
def test_embedding(options, dtype):
    rng = np.random.default_rng(seed(tuple(options.items())))
    indices = rng.integers(0, 7, (3, 5))
    indices[0, :3] = 2  # repeats, and the padding row in use
    indices[1, 0] = 6
    run_both(
        lambda w: F.embedding(Tensor(indices), w, **options),
        lambda w: TF.embedding(torch.tensor(indices), w, **options),
        rng.standard_normal((7, 4)),
        [],
        dtype,
        rng,
    )


@pytest.mark.parametrize("norm_type", [2.0, 1.0])
def test_embedding_max_norm_renormalises_the_rows_used_in_place(norm_type):
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((6, 4)) * 2
    indices = np.array([[0, 1, 1], [4, 0, 5]])
    w_k, w_t = pair(weight, np.float64)
    y_k = F.embedding(Tensor(indices), w_k, max_norm=1.5, norm_type=norm_type)
    y_t = TF.embedding(torch.tensor(indices), w_t, max_norm=1.5, norm_type=norm_type)
    check(y_k, y_t, np.float64, "output")
    check(w_k.data, w_t.detach(), np.float64, "weight after renormalisation")
    y_k.sum().backward()
    y_t.sum().backward()
    check(w_k.grad, w_t.grad, np.float64, "weight gradient")


def test_embedding_module_matches_torch():
    torch.manual_seed(0)
    theirs = torch.nn.Embedding(10, 3, padding_idx=4)
    ours = nn.Embedding(10, 3, padding_idx=4)
    assert list(ours.state_dict()) == ["weight"] and ours.weight.shape == (10, 3)
    assert np.all(ours.weight.data[4] == 0) and ours.weight.data.dtype == np.float32
    ours.load_state_dict({"weight": theirs.weight.detach().numpy()})
    indices = np.array([[4, 1, 9], [1, 1, 0]])
    y_k, y_t = ours(Tensor(indices)), theirs(torch.tensor(indices))
    check(y_k, y_t, np.float32, "output")
    y_k.sum().backward()
    y_t.sum().backward()
    check(ours.weight.grad, theirs.weight.grad, np.float32, "weight gradient")
    assert repr(ours) == repr(theirs)


def test_embedding_from_pretrained_is_frozen_by_default():
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    frozen = nn.Embedding.from_pretrained(Tensor(table))
    assert not frozen.weight.requires_grad and frozen.weight.data is not table
    assert nn.Embedding.from_pretrained(table, freeze=False).weight.requires_grad
    np.testing.assert_array_equal(frozen(Tensor(np.array([3, 0]))).data, table[[3, 0]])


def test_embedding_errors():
    weight = Tensor(np.zeros((5, 2), np.float32))
    with pytest.raises(IndexError, match="embedding: index 5 is out of range for a weight of 5 rows"):
        F.embedding(Tensor(np.array([0, 5])), weight)
    with pytest.raises(TypeError, match="embedding: input must hold integer indices"):
        F.embedding(Tensor(np.array([0.0, 1.0])), weight)
    with pytest.raises(ValueError, match="embedding: sparse=True is not supported"):
        F.embedding(Tensor(np.array([0])), weight, sparse=True)
