"""kinone.models DenseNet: torchvision's structure and parameter counts, the shared
concatenation buffer (GrowChannels: cat's values and gradients, one buffer instead of a copy per
layer), weights (legacy keys, one input channel), options, and a training step on the stand-in
CUDA device. The comparison with torchvision itself is in test_densenet_torchvision.py."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from kinone import models, nn
from kinone.autograd import Tensor, backend, cat, gradcheck, manual_seed, no_grad, trace
from kinone.models.densenet import _DenseBlock
from kinone.nn import functional as F

# name: (parameters at 1000 classes, parameter tensors, state-dict keys, sha256[:16] of the
# "key:shape" lines in order), read from torchvision 0.29.1 (torch 2.14.1), weights=None.
TORCHVISION = {
    "densenet121": (7_978_856, 364, 727, "604b78c2bbed70c0"),
    "densenet161": (28_681_000, 484, 967, "3f911412d51f2ecc"),
    "densenet169": (14_149_480, 508, 1015, "56728b035e841ddf"),
    "densenet201": (20_013_928, 604, 1207, "82cfe2e7fe9f5e8e"),
}


def digest(state_dict) -> str:
    lines = "\n".join(f"{key}:{tuple(value.shape)}" for key, value in state_dict.items())
    return hashlib.sha256(lines.encode()).hexdigest()[:16]


def images(n, c=3, size=32, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal((n, c, size, size)).astype(dtype)


def tiny(**kwargs) -> models.DenseNet:
    """A DenseNet small enough for float64 gradient checks: k = 4, blocks (2, 3), stem 8."""
    manual_seed(0)
    options = dict(growth_rate=4, block_config=(2, 3), num_init_features=8, bn_size=2, num_classes=3)
    return models.DenseNet(**{**options, **kwargs})


def cat_forward(model, x):
    """The textbook formulation: every layer's input a fresh cat of the block's features."""
    for module in model.features.children():
        if isinstance(module, _DenseBlock):
            for layer in module.values():
                x = cat([x, layer(x)], 1)
        else:
            x = module(x)
    return model.classifier(F.adaptive_avg_pool2d(F.relu(x), (1, 1)).flatten(1))


def gradients(model):
    return {key: p.grad.data.copy() for key, p in model.named_parameters()}


# ---------------------------------------------------------------------------- structure
@pytest.mark.parametrize("name", list(TORCHVISION))
def test_counts_keys_and_shapes_match_torchvision(name):
    count, tensors, keys, expected_digest = TORCHVISION[name]
    model = models.get_model(name)
    state = model.state_dict()
    assert model.num_parameters() == count
    assert len(list(model.parameters())) == tensors
    assert len(state) == keys
    assert digest(state) == expected_digest
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert keys == tensors + 3 * len(bns)


def test_densenet121_names_and_shapes():
    model = models.densenet121(num_classes=14)
    state = model.state_dict()
    assert list(state)[:7] == [
        "features.conv0.weight",
        "features.norm0.weight",
        "features.norm0.bias",
        "features.norm0.running_mean",
        "features.norm0.running_var",
        "features.norm0.num_batches_tracked",
        "features.denseblock1.denselayer1.norm1.weight",
    ]
    assert list(state)[-2:] == ["classifier.weight", "classifier.bias"]
    assert state["features.conv0.weight"].shape == (64, 3, 7, 7)
    assert state["features.denseblock1.denselayer1.conv1.weight"].shape == (128, 64, 1, 1)  # bn_size·k = 4·32
    assert state["features.denseblock1.denselayer6.conv1.weight"].shape == (128, 64 + 5 * 32, 1, 1)
    assert state["features.denseblock1.denselayer6.conv2.weight"].shape == (32, 128, 3, 3)
    assert state["features.transition1.conv.weight"].shape == (128, 256, 1, 1)  # halves the channels
    assert state["features.transition3.conv.weight"].shape == (512, 1024, 1, 1)
    assert state["features.norm5.running_var"].shape == (1024,)
    assert state["classifier.weight"].shape == (14, 1024)
    assert model.num_parameters() == 6_968_206  # torchvision at 14 classes (CheXNet)
    assert [name for name, _ in model.features.named_children()] == [
        "conv0",
        "norm0",
        "relu0",
        "pool0",
        "denseblock1",
        "transition1",
        "denseblock2",
        "transition2",
        "denseblock3",
        "transition3",
        "denseblock4",
        "norm5",
    ]
    assert [len(getattr(model.features, f"denseblock{i}")) for i in range(1, 5)] == [6, 12, 24, 16]
    transition = model.features.transition2
    assert [name for name, _ in transition.named_children()] == ["norm", "relu", "conv", "pool"]
    assert transition.pool.kernel_size in (2, (2, 2)) and transition.pool.stride in (2, (2, 2))


def test_initialisation_as_torchvision():
    manual_seed(0)
    model = models.densenet121()
    w = model.features.denseblock3.denselayer24.conv1.weight.data  # (128, 992, 1, 1): fan_in 992
    assert abs(w.std() - np.sqrt(2 / 992)) / np.sqrt(2 / 992) < 0.02
    assert np.all(model.features.norm5.weight.data == 1) and np.all(model.features.norm5.bias.data == 0)
    assert np.all(model.classifier.bias.data == 0)
    assert 0 < np.abs(model.classifier.weight.data).max() <= 1 / np.sqrt(1024)  # PyTorch's default Linear


def test_options():
    gray = models.densenet121(num_classes=2, in_channels=1)
    assert gray.features.conv0.weight.shape == (64, 1, 7, 7) and gray.classifier.weight.shape == (2, 1024)
    assert models.densenet121(memory_efficient=False).num_parameters() == 7_978_856
    with pytest.raises(ValueError, match="memory_efficient=True .* not implemented"):
        models.densenet121(memory_efficient=True)
    assert models.densenet121(drop_rate=0.2).features.denseblock2.denselayer3.drop_rate == 0.2
    with pytest.raises(TypeError):
        models.densenet121(3)  # keyword-only, as torchvision


# ---------------------------------------------------------------------------- GrowChannels
def test_grow_channels_gradcheck_and_values():
    rng = np.random.default_rng(1)
    x, f, g = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 2, 4, 5)), rng.standard_normal((2, 2, 4, 5))

    def grow(x, f, g):  # x copied in, then f and g appended in place
        buffer = backend.get_array_module(x.data).empty((2, 7, 4, 5))
        y = models.GrowChannels.apply(x, f, buffer=buffer, copy_input=True)
        return models.GrowChannels.apply(y, g, buffer=buffer) * 1.5

    tensors = [Tensor(a.copy(), requires_grad=True) for a in (x, f, g)]
    np.testing.assert_array_equal(grow(*tensors).data, np.concatenate([x, f, g], 1) * 1.5)
    assert gradcheck(grow, tensors)
    doc = models.GrowChannels.__doc__
    assert "y =" in doc and "dL/d" in doc
    with pytest.raises(ValueError, match="GrowChannels: buffer .* cannot hold 3 \\+ 2 channels"):
        models.GrowChannels.apply(tensors[0], tensors[1], buffer=np.empty((2, 4, 4, 5)), copy_input=True)


def test_block_output_is_one_buffer_and_its_views_are_what_batch_norm_saved():
    model = tiny().train()
    block = model.features.denseblock2
    inputs = []
    handles = [layer.norm1.register_forward_hook(lambda m, i, o: inputs.append(i[0])) for layer in block.values()]
    x = Tensor(images(2, c=8, size=8))
    out = block(x)
    for h in handles:
        h.remove()
    assert out.shape == (2, 8 + 3 * 4, 8, 8)
    buffer = out.data if out.data.base is None else out.data.base
    assert inputs[0] is x  # the first layer reads the block's input; later ones views of the buffer
    assert all(np.shares_memory(t.data, buffer) for t in inputs[1:])
    np.testing.assert_array_equal(out.data[:, :8], x.data)
    assert [x.shape[1] for x in inputs] == [8, 12, 16]


def test_training_values_and_gradients_equal_the_cat_formulation():
    """float64: the buffer gives cat's logits, running statistics and every gradient."""
    x, target = images(4, size=16, seed=2, dtype=np.float64), Tensor(np.array([0, 1, 2, 1]))
    results = []
    for forward in (lambda m, t: m(t), cat_forward):
        model = tiny(drop_rate=0.0).to(np.float64).train()
        logits = forward(model, Tensor(x))
        F.cross_entropy(logits, target).backward()
        results.append((logits.data, gradients(model), model.state_dict()))
    (ours, our_grads, our_state), (theirs, their_grads, their_state) = results
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    for key in their_grads:
        np.testing.assert_allclose(our_grads[key], their_grads[key], rtol=1e-10, atol=1e-12, err_msg=key)
    for key in their_state:
        np.testing.assert_allclose(our_state[key], their_state[key], rtol=1e-12, err_msg=key)


def saved_bytes(loss) -> int:
    """Bytes of the distinct memory blocks that the graph below `loss` saved for backward."""
    owners, stack, seen = {}, [loss.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen or isinstance(node, Tensor):
            continue
        seen.add(id(node))
        for array in node.saved_arrays or ():
            if isinstance(array, np.ndarray):
                owner = array if array.base is None else array.base
                owners[id(owner)] = owner.nbytes
        stack.extend(node.edges)
    return sum(owners.values())


def test_the_graph_saves_fewer_bytes_than_a_cat_per_layer():
    """The concatenations cost nothing beyond the block buffers: against cat's graph, the saved
    memory drops by at least the concatenations' total minus the buffers'."""
    x = Tensor(images(2, size=32))
    model = tiny(block_config=(6, 6)).train()
    ours = saved_bytes(F.cross_entropy(model(x), Tensor(np.array([0, 1]))))
    theirs = saved_bytes(F.cross_entropy(cat_forward(model, x), Tensor(np.array([0, 1]))))
    # Block 1 at 8x8 (8 + 4i channels, i = 1..6), block 2 at 4x4 (14 + 4i), float32, N = 2.
    concatenations = 4 * 2 * (64 * sum(8 + 4 * i for i in range(1, 6)) + 16 * sum(14 + 4 * i for i in range(1, 6)))
    buffers = 4 * 2 * (64 * 32 + 16 * 38)
    assert theirs - ours >= concatenations - buffers > 0, (theirs, ours)


def test_no_grad_uses_cat_and_gives_the_same_logits():
    model = tiny().eval()
    x = Tensor(images(2, size=16))
    recorded = model(x)
    with trace() as records, no_grad():
        plain = model(x)
    assert not any(r.function is models.GrowChannels for r in records)  # the ONNX exporter sees Concat
    np.testing.assert_array_equal(plain.data, recorded.data)


def test_dropout_only_in_training():
    manual_seed(0)
    model = tiny(drop_rate=0.5)
    x = Tensor(images(4, size=16))
    with no_grad():
        model.eval()
        np.testing.assert_array_equal(model(x).data, model(x).data)
    model.train()
    assert not np.allclose(model(x).data, model(x).data)


def test_layer_accepts_torchvisions_list_of_features():
    layer = tiny().features.denseblock1.denselayer2
    a, b = Tensor(images(2, c=8, size=6)), Tensor(images(2, c=4, size=6, seed=1))
    with no_grad():
        np.testing.assert_array_equal(layer([a, b]).data, layer(cat([a, b], 1)).data)


# ---------------------------------------------------------------------------- weights
def legacy_name(key: str) -> str:
    """torchvision's checkpoint name of a key (`norm1` -> `norm.1`)."""
    for module in ("norm", "relu", "conv"):
        for index in "12":
            key = key.replace(f".{module}{index}.", f".{module}.{index}.")
    return key


def test_legacy_checkpoint_keys_load_into_one_or_three_channels(tmp_path):
    """torchvision's published files carry `norm.1`-style keys: the builder renames them, and
    a 1-channel model sees a gray image as the 3-channel model sees it repeated."""
    manual_seed(1)
    source = models.densenet121(num_classes=4).eval()
    state = source.state_dict()
    # Those files predate batch norm's counter: PyTorch starts it at 0, and so does the renaming.
    legacy = {legacy_name(k): v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    assert list(models.remap_legacy_keys(legacy)) == list(state)
    nn.save(legacy, tmp_path / "legacy.npz")
    x = images(2, size=32)
    with no_grad():
        expected = source(Tensor(x)).data
        gray_expected = source(Tensor(np.repeat(x[:, :1], 3, axis=1))).data
        three = models.densenet121(num_classes=4, weights=tmp_path / "legacy.npz").eval()
        np.testing.assert_allclose(three(Tensor(x)).data, expected, rtol=1e-5, atol=1e-6)
        gray = models.densenet121(num_classes=4, in_channels=1, weights=tmp_path / "legacy.npz").eval()
        np.testing.assert_allclose(gray(Tensor(x[:, :1])).data, gray_expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(RuntimeError, match="legacy.npz"):
        models.densenet121(num_classes=5, weights=tmp_path / "legacy.npz")


# ---------------------------------------------------------------------------- devices
def _cuda_step(device):
    manual_seed(0)
    model = models.densenet121(num_classes=14, in_channels=1).train()
    if device == "cuda":
        model.cuda()
    x, y = Tensor(images(2, c=1, size=32, seed=3)), Tensor((np.arange(28).reshape(2, 14) % 3 == 0).astype(np.float32))
    if device == "cuda":
        x, y = x.cuda(), y.cuda()
    loss = F.binary_cross_entropy_with_logits(model(x), y)
    loss.backward()
    return loss.item(), {k: backend.to_host(p.grad.data) for k, p in model.named_parameters()}, model.state_dict()


def test_densenet121_training_step_on_the_standin_cuda_device_matches_the_cpu():
    cpu_loss, cpu_grads, cpu_state = _cuda_step("cpu")
    with backend.use_standin_cuda():
        cuda_loss, cuda_grads, cuda_state = _cuda_step("cuda")
    assert cuda_loss == pytest.approx(cpu_loss, rel=1e-5)
    for key, grad in cpu_grads.items():
        scale = max(float(np.abs(grad).max()), 1e-6)
        assert float(np.abs(cuda_grads[key] - grad).max()) <= 1e-4 * scale, key
    for key, value in cpu_state.items():
        assert isinstance(cuda_state[key], np.ndarray), key
        np.testing.assert_allclose(cuda_state[key], value, rtol=1e-4, atol=1e-6, err_msg=key)
