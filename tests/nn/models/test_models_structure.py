"""kinone.models structure: torchvision's parameter counts, state-dict keys (names, order and
shapes), per-variant hyperparameters, initialisation and the registry. No forward passes."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from kinone import models, nn
from kinone.autograd import manual_seed

# name: (parameters at 1000 classes, parameter tensors, state-dict keys, sha256[:16] of the
# "key:shape" lines in order). All read from torchvision 0.29.1 (torch 2.14.1) models
# built with weights=None: the digest pins every name, its position and its shape.
TORCHVISION = {
    "resnet18": (11_689_512, 62, 122, "3e58b0798c806a0c"),
    "resnet34": (21_797_672, 110, 218, "97e365907d64da74"),
    "resnet50": (25_557_032, 161, 320, "781bb16f43b8f96f"),
    "resnet101": (44_549_160, 314, 626, "708e8813e2eb3461"),
    "resnet152": (60_192_808, 467, 932, "9e3321003337a848"),
    "efficientnet_b0": (5_288_548, 213, 360, "e1f159b97ca4b202"),
    "efficientnet_b1": (7_794_184, 301, 508, "989a43fdb89753c2"),
    "efficientnet_b2": (9_109_994, 301, 508, "f8562fea91f98ae8"),
    "efficientnet_b3": (12_233_232, 340, 574, "ddbc48d0e5f9ddc6"),
    "efficientnet_b4": (19_341_616, 418, 706, "247b4546c18f3d80"),
    "efficientnet_b5": (30_389_784, 506, 854, "2ade86b0b939e121"),
    "efficientnet_b6": (43_040_704, 584, 986, "fb07994073c93883"),
    "efficientnet_b7": (66_347_960, 711, 1200, "c6f5daf9dfaea933"),
    "densenet121": (7_978_856, 364, 727, "604b78c2bbed70c0"),
    "densenet161": (28_681_000, 484, 967, "3f911412d51f2ecc"),
    "densenet169": (14_149_480, 508, 1015, "56728b035e841ddf"),
    "densenet201": (20_013_928, 604, 1207, "82cfe2e7fe9f5e8e"),
}


def digest(state_dict) -> str:
    lines = "\n".join(f"{key}:{tuple(value.shape)}" for key, value in state_dict.items())
    return hashlib.sha256(lines.encode()).hexdigest()[:16]


def test_registry_lists_the_seventeen_models():
    assert models.list_models() == sorted(TORCHVISION)
    assert models.list_models("resnet*") == ["resnet101", "resnet152", "resnet18", "resnet34", "resnet50"]
    assert models.list_models(exclude=["resnet*", "efficientnet_b[1-7]", "densenet*"]) == ["efficientnet_b0"]
    assert models.get_model_builder("resnet18") is models.resnet18
    with pytest.raises(ValueError, match="unknown model 'resnet19'.*resnet18"):
        models.get_model("resnet19")


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_counts_keys_and_shapes_match_torchvision(name):
    count, tensors, keys, expected_digest = TORCHVISION[name]
    model = models.get_model(name)
    state = model.state_dict()
    assert model.num_parameters() == count
    assert len(list(model.parameters())) == tensors
    assert len(state) == keys
    assert digest(state) == expected_digest
    # Every batch norm carries torchvision's three buffers, the counter as an int64 scalar.
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert keys == tensors + 3 * len(bns)
    assert all(m.num_batches_tracked.data.shape == () and m.num_batches_tracked.dtype == np.int64 for m in bns)


def test_resnet_names_and_shapes():
    r18 = models.resnet18().state_dict()
    assert list(r18)[:7] == [
        "conv1.weight",
        "bn1.weight",
        "bn1.bias",
        "bn1.running_mean",
        "bn1.running_var",
        "bn1.num_batches_tracked",
        "layer1.0.conv1.weight",
    ]
    assert list(r18)[-2:] == ["fc.weight", "fc.bias"]
    assert r18["conv1.weight"].shape == (64, 3, 7, 7)
    assert "layer1.0.downsample.0.weight" not in r18  # 64 -> 64 at stride 1: no projection
    assert r18["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert r18["layer2.0.conv1.weight"].shape == (128, 64, 3, 3)
    r50 = models.resnet50(num_classes=14)
    state = r50.state_dict()
    assert state["layer1.0.conv1.weight"].shape == (64, 64, 1, 1)
    assert state["layer1.0.conv3.weight"].shape == (256, 64, 1, 1)
    assert state["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert state["layer1.0.downsample.1.num_batches_tracked"].dtype == np.int64
    assert state["fc.weight"].shape == (14, 2048)
    assert r50.num_parameters() == 23_536_718  # torchvision's figure at 14 classes
    # v1.5: the stride sits on the 3x3 conv, not on the first 1x1.
    assert r50.layer2[0].conv1.stride == (1, 1) and r50.layer2[0].conv2.stride == (2, 2)
    assert r50.layer2[0].downsample[0].stride == (2, 2)
    # torchvision has no Flatten module (torch.flatten in forward): the module trees agree.
    assert [name for name, _ in r50.named_children()] == [
        "conv1",
        "bn1",
        "relu",
        "maxpool",
        "layer1",
        "layer2",
        "layer3",
        "layer4",
        "avgpool",
        "fc",
    ]


def test_efficientnet_names_and_shapes():
    b0 = models.efficientnet_b0()
    state = b0.state_dict()
    assert len(b0.features) == 9
    assert [len(stage) for stage in list(b0.features)[1:8]] == [1, 2, 2, 3, 3, 4, 1]
    assert state["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert state["features.1.0.block.0.0.weight"].shape == (32, 1, 3, 3)  # depthwise, no expand conv
    assert state["features.1.0.block.1.fc1.weight"].shape == (8, 32, 1, 1)
    assert state["features.1.0.block.1.fc1.bias"].shape == (8,)
    assert state["features.1.0.block.2.0.weight"].shape == (16, 32, 1, 1)
    assert state["features.2.0.block.0.0.weight"].shape == (96, 16, 1, 1)  # expand
    assert state["features.2.0.block.1.0.weight"].shape == (96, 1, 3, 3)
    assert state["features.2.0.block.2.fc1.weight"].shape == (4, 96, 1, 1)  # squeeze = input // 4
    assert state["features.3.0.block.1.0.weight"].shape == (144, 1, 5, 5)
    assert state["features.8.0.weight"].shape == (1280, 320, 1, 1)
    assert list(state)[-2:] == ["classifier.1.weight", "classifier.1.bias"]
    assert state["classifier.1.weight"].shape == (1000, 1280)
    assert models.efficientnet_b0(num_classes=14).num_parameters() == 4_025_482  # torchvision at 14 classes
    block = b0.features[1][0]
    assert isinstance(block.block[1], models.SqueezeExcitation)
    assert isinstance(block.block[1].activation, nn.SiLU) and isinstance(block.block[1].scale_activation, nn.Sigmoid)
    assert isinstance(block.stochastic_depth, models.StochasticDepth)


# Stem | (channels x blocks) per stage | head, from torchvision (anchors-architecture.md section d).
EFFICIENTNET_SHAPES = {
    "efficientnet_b0": (32, [(16, 1), (24, 2), (40, 2), (80, 3), (112, 3), (192, 4), (320, 1)], 1280),
    "efficientnet_b1": (32, [(16, 2), (24, 3), (40, 3), (80, 4), (112, 4), (192, 5), (320, 2)], 1280),
    "efficientnet_b2": (32, [(16, 2), (24, 3), (48, 3), (88, 4), (120, 4), (208, 5), (352, 2)], 1408),
    "efficientnet_b3": (40, [(24, 2), (32, 3), (48, 3), (96, 5), (136, 5), (232, 6), (384, 2)], 1536),
    "efficientnet_b4": (48, [(24, 2), (32, 4), (56, 4), (112, 6), (160, 6), (272, 8), (448, 2)], 1792),
    "efficientnet_b5": (48, [(24, 3), (40, 5), (64, 5), (128, 7), (176, 7), (304, 9), (512, 3)], 2048),
    "efficientnet_b6": (56, [(32, 3), (40, 6), (72, 6), (144, 8), (200, 8), (344, 11), (576, 3)], 2304),
    "efficientnet_b7": (64, [(32, 4), (48, 7), (80, 7), (160, 10), (224, 10), (384, 13), (640, 4)], 2560),
}


@pytest.mark.parametrize("name", list(EFFICIENTNET_SHAPES))
def test_efficientnet_scaling_tables(name):
    stem, stages, head = EFFICIENTNET_SHAPES[name]
    config = models.efficientnet_config(name)
    assert config[0].input_channels == stem
    assert [(c.out_channels, c.num_layers) for c in config] == stages
    assert 4 * config[-1].out_channels == head


def test_efficientnet_hyperparameters_per_variant():
    b0 = models.efficientnet_b0()
    assert b0.classifier[0].p == 0.2
    depths = [m.stochastic_depth.p for m in b0.modules() if isinstance(m, models.MBConv)]
    assert depths == pytest.approx([0.2 * i / 16 for i in range(16)])  # global block counter, last 0.1875
    assert all(m.eps == 1e-5 and m.momentum == 0.1 for m in b0.modules() if isinstance(m, nn.BatchNorm2d))
    residual = [m.use_res_connect for m in b0.modules() if isinstance(m, models.MBConv)]
    assert residual == [
        False,
        False,
        True,
        False,
        True,
        False,
        True,
        True,
        False,
        True,
        True,
        False,
        True,
        True,
        True,
        False,
    ]
    b5 = models.efficientnet_b5(num_classes=2)
    assert b5.classifier[0].p == 0.4
    assert all(m.eps == 1e-3 and m.momentum == 0.01 for m in b5.modules() if isinstance(m, nn.BatchNorm2d))
    assert models.efficientnet_b0(dropout=0.5, stochastic_depth_prob=0.0).classifier[0].p == 0.5


def test_resnet_initialisation_as_torchvision():
    manual_seed(0)
    model = models.resnet18()
    w = model.layer4[0].conv2.weight.data  # (512, 512, 3, 3): fan_out = 512 * 9
    assert w.dtype == np.float32
    assert abs(w.std() - math.sqrt(2 / (512 * 9))) / math.sqrt(2 / (512 * 9)) < 0.02
    assert abs(w.mean()) < 1e-4
    assert np.all(model.bn1.weight.data == 1) and np.all(model.bn1.bias.data == 0)
    assert np.all(model.layer1[0].bn2.weight.data == 1)
    bound = 1 / math.sqrt(512)  # PyTorch's default Linear init
    assert np.abs(model.fc.weight.data).max() <= bound and np.abs(model.fc.bias.data).max() <= bound
    assert all(p.dtype == np.float32 for p in model.parameters())
    zero = models.resnet18(zero_init_residual=True)
    assert all(np.all(b.bn2.weight.data == 0) for layer in (zero.layer1, zero.layer4) for b in layer)
    assert np.all(zero.bn1.weight.data == 1)
    zero50 = models.resnet50(zero_init_residual=True)
    assert np.all(zero50.layer3[5].bn3.weight.data == 0) and np.all(zero50.layer3[5].bn2.weight.data == 1)


def test_efficientnet_initialisation_as_torchvision():
    manual_seed(0)
    model = models.efficientnet_b0()
    w = model.features[8][0].weight.data  # (1280, 320, 1, 1): fan_out = 1280
    assert abs(w.std() - math.sqrt(2 / 1280)) / math.sqrt(2 / 1280) < 0.02
    se = model.features[6][0].block[2]
    assert np.all(se.fc1.bias.data == 0) and np.all(se.fc2.bias.data == 0)
    linear = model.classifier[1]
    assert np.abs(linear.weight.data).max() <= 1 / math.sqrt(1000)
    assert linear.weight.data.std() > 0.8 / math.sqrt(3 * 1000)  # U(±1/√1000), not PyTorch's 1/√1280
    assert np.all(linear.bias.data == 0)


def test_seeded_construction_is_reproducible():
    manual_seed(5)
    a = models.resnet18(num_classes=3).state_dict()
    manual_seed(5)
    b = models.resnet18(num_classes=3).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_constructor_options():
    model = models.resnet18(num_classes=14, in_channels=1)
    assert model.conv1.weight.shape == (64, 1, 7, 7) and model.fc.weight.shape == (14, 512)
    assert model.num_parameters() == 11_183_694 - 64 * 2 * 7 * 7
    b0 = models.efficientnet_b0(in_channels=1, num_classes=2)
    assert b0.features[0][0].weight.shape == (32, 1, 3, 3) and b0.classifier[1].weight.shape == (2, 1280)
    dilated = models.resnet50(replace_stride_with_dilation=[False, True, True])
    assert dilated.layer4[0].conv2.stride == (1, 1) and dilated.layer4[1].conv2.dilation == (4, 4)
    with pytest.raises(TypeError):
        models.resnet18(3)  # keyword-only, as torchvision
    with pytest.raises(ValueError, match="replace_stride_with_dilation"):
        models.resnet18(replace_stride_with_dilation=[True])


def test_package_docstring_examples_run():
    import doctest

    assert doctest.testmod(models, raise_on_error=False).failed == 0
