"""Loading pretrained weights: `.npz` state dicts with torchvision's key names.

`load_weights(model, path)` reads a file written by `kinone.nn.save` or by
`python -m kinone.models.convert IN.pth OUT.npz` and loads it strictly. A model built with
a different number of input channels than the weights (chest X-rays are one channel,
ImageNet checkpoints three) gets its first convolution's kernel adapted by
`adapt_input_conv` on the way in; every other key and shape must match exactly.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from kinone import nn
from kinone.autograd import Tensor, backend


def adapt_input_conv(weight, in_channels: int) -> np.ndarray:
    """Adapt a convolution kernel of shape (out, C, kh, kw) to `in_channels` input channels.

    - `in_channels == 1`: the kernel summed over its C input channels. A one-channel image x
      then gives exactly what the original kernel gives on x repeated C times
      (Σ_c W_c ⋆ x = (Σ_c W_c) ⋆ x), so ImageNet weights see a gray image as they would see
      it in RGB (normalise it with one mean and std, e.g. the channel means' average).
    - `in_channels == C`: the kernel unchanged (a copy).
    - otherwise: the C channels repeated cyclically up to `in_channels` and scaled by
      C / in_channels, which keeps the expected activation scale (timm's rule).

    Returns a new host (NumPy) array in the kernel's dtype; the argument is not modified.
    """
    weight = backend.to_host(weight.data if isinstance(weight, Tensor) else weight)
    if weight.ndim != 4:
        raise ValueError(f"adapt_input_conv: expected a conv kernel (out, in, kh, kw), got shape {weight.shape}")
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"adapt_input_conv: in_channels must be a positive int, got {in_channels!r}")
    channels = weight.shape[1]
    if in_channels == channels:
        return weight.copy()
    if in_channels == 1:
        return weight.sum(axis=1, keepdims=True, dtype=np.float64).astype(weight.dtype)
    repeats = -(-in_channels // channels)  # ceil
    tiled = np.tile(weight, (1, repeats, 1, 1))[:, :in_channels]
    return (tiled * (channels / in_channels)).astype(weight.dtype)


def first_conv_key(model: nn.Module) -> str:
    """The state-dict key of the model's first convolution kernel (torchvision's names:
    `conv1.weight` in ResNet, `features.0.0.weight` in EfficientNet)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return f"{name}.weight" if name else "weight"
    raise ValueError(f"first_conv_key: {type(model).__name__} has no Conv2d")


def adapt_state_dict(state_dict: Mapping, model: nn.Module) -> OrderedDict[str, np.ndarray]:
    """A copy of `state_dict` whose first conv kernel has the model's number of input channels
    (via `adapt_input_conv`) when only that differs; all other entries are passed through."""
    out = OrderedDict(state_dict)
    key = first_conv_key(model)
    if key in out:
        source = backend.to_host(out[key].data if isinstance(out[key], Tensor) else out[key])
        target = model.state_dict()[key]
        if (
            source.ndim == 4
            and source.shape != target.shape
            and (source.shape[0],) + source.shape[2:] == (target.shape[0],) + target.shape[2:]
        ):
            out[key] = adapt_input_conv(source, target.shape[1])
    return out


def load_weights(model: nn.Module, weights, strict: bool = True) -> nn.IncompatibleKeys:
    """Load `weights` (a path to an `.npz` state dict, or a mapping of key -> array) into
    `model`, adapting the first conv to the model's input channels (`adapt_state_dict`), with
    `load_state_dict(strict=strict)`: missing, unexpected or wrong-shape keys are errors that
    name the file."""
    if isinstance(weights, (str, os.PathLike)):
        state_dict = nn.load(weights)
        source = os.fspath(weights)
    elif isinstance(weights, Mapping):
        state_dict, source = weights, None
    else:
        raise TypeError(f"weights must be a path to an .npz file or a state dict, got {type(weights).__name__}")
    try:
        return model.load_state_dict(adapt_state_dict(state_dict, model), strict=strict)
    except RuntimeError as error:
        if source is None:
            raise
        raise RuntimeError(f"loading weights from {source}: {error}") from error
