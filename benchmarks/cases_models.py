"""Group `models`: whole-network steps of kinone.models against torchvision, float32.

Each build function receives `fw` (`kinone.autograd` or `torch`) and builds the same network
in that framework: `kinone.models.<name>` or `torchvision.models.<name>` (same module tree,
same parameter names). Without torchvision the torch child fails and its columns read n/a.

Both frameworks get the same weights: every parameter is drawn with NumPy from a generator
seeded by its state-dict key (convolutions and linear layers N(0, 2/fan_out), BN 1 and 0,
biases 0), so the harness's loss comparison checks that the two compute the same thing.

The training steps are what a training loop does per batch: zero_grad, forward in train mode,
cross-entropy, backward, SGD with momentum 0.9 and weight decay 1e-4. The learning rate is 0:
the optimizer does all its arithmetic (weight decay, momentum buffer, update) but the weights
stay put, so every timed step sees the same model and both frameworks report the same loss
(ResNet's; EfficientNet's dropout and stochastic depth draw different random numbers in the
two frameworks, so its losses differ slightly and the harness may say so).
"""

from __future__ import annotations

import zlib

import numpy as np
from case import Case  # benchmarks/case.py: run.py puts its own folder on sys.path

NUM_CLASSES = 1000


def _numpy_weights(named_shapes):
    """key -> float32 array, deterministic per key (the same in both frameworks)."""
    weights = {}
    for key, shape in named_shapes:
        rng = np.random.default_rng(zlib.crc32(key.encode()))
        if len(shape) >= 2:  # conv or linear weight: N(0, 2 / fan_out), as kaiming fan_out
            fan_out = shape[0] * int(np.prod(shape[2:]))
            weights[key] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_out)).astype(np.float32)
        elif key.endswith("weight"):  # batch-norm scale
            weights[key] = np.ones(shape, dtype=np.float32)
        else:  # every bias
            weights[key] = np.zeros(shape, dtype=np.float32)
    return weights


def build_model(fw, name):
    """`name` from kinone.models or torchvision.models, with the shared NumPy weights."""
    if fw.__name__ == "torch":
        try:
            import torchvision
        except ImportError as error:
            raise ImportError(f"torchvision is not importable ({error}): no torch figures for {name}") from error
        model = getattr(torchvision.models, name)(weights=None, num_classes=NUM_CLASSES)
        values = _numpy_weights((k, tuple(p.shape)) for k, p in model.named_parameters())
        with fw.no_grad():
            for key, p in model.named_parameters():
                p.copy_(fw.from_numpy(values[key]))
    else:
        from kinone import models

        model = models.get_model(name, num_classes=NUM_CLASSES)
        values = _numpy_weights((k, p.shape) for k, p in model.named_parameters())
        for key, p in model.named_parameters():
            p.data[...] = values[key]
    return model


def _sgd(fw, model):
    if fw.__name__ == "torch":
        from torch.optim import SGD
    else:
        from kinone.optim import SGD
    return SGD(model.parameters(), lr=0.0, momentum=0.9, weight_decay=1e-4)


def _cross_entropy(fw):
    if fw.__name__ == "torch":
        from torch.nn.functional import cross_entropy
    else:
        from kinone.nn.functional import cross_entropy
    return cross_entropy


def _training_step(fw, name, batch, size):
    model = build_model(fw, name).train()
    optimizer = _sgd(fw, model)
    cross_entropy = _cross_entropy(fw)
    rng = np.random.default_rng(0)
    x = fw.tensor(rng.standard_normal((batch, 3, size, size)).astype(np.float32))
    target = fw.tensor(rng.integers(0, NUM_CLASSES, batch))  # int64

    def step():
        optimizer.zero_grad()
        loss = cross_entropy(model(x), target)
        loss.backward()
        optimizer.step()
        return loss

    return step


def resnet18_train_step(fw):
    """resnet18 training step, (16, 3, 64, 64) float32: forward, cross-entropy, backward, SGD-momentum step."""
    return _training_step(fw, "resnet18", 16, 64)


def efficientnet_b0_train_step(fw):
    """efficientnet_b0 training step, (8, 3, 64, 64) float32: forward, cross-entropy, backward, SGD-momentum step."""
    return _training_step(fw, "efficientnet_b0", 8, 64)


def densenet121_train_step_224(fw):
    """densenet121 training step, (8, 3, 224, 224) float32 (CheXNet's network and size):
    forward, cross-entropy, backward, SGD-momentum step."""
    return _training_step(fw, "densenet121", 8, 224)


def densenet121_train_step_64(fw):
    """densenet121 training step, (16, 3, 64, 64) float32: forward, cross-entropy, backward, SGD-momentum step."""
    return _training_step(fw, "densenet121", 16, 64)


def resnet18_inference_224(fw):
    """resnet18 eval-mode inference under no_grad, (16, 3, 224, 224) float32."""
    model = build_model(fw, "resnet18").eval()
    x = fw.tensor(np.random.default_rng(0).standard_normal((16, 3, 224, 224)).astype(np.float32))

    def step():
        with fw.no_grad():
            return model(x).mean()

    return step


CASES = [
    Case("resnet18_train_step", resnet18_train_step, unit="ms/iter", target=2.0),
    Case("efficientnet_b0_train_step", efficientnet_b0_train_step, unit="ms/iter", target=3.0),
    Case("resnet18_inference_224", resnet18_inference_224, unit="ms/iter"),
    Case("densenet121_train_step_224", densenet121_train_step_224, unit="ms/iter", target=2.0),
    Case("densenet121_train_step_64", densenet121_train_step_64, unit="ms/iter", target=2.0),
]
