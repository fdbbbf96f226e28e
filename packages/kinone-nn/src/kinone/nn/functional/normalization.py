"""Normalisation: batch norm over the channel dim (dim 1) of (N, C), (N, C, L) or (N, C, H, W)
inputs; layer, group and instance norm per sample (at the end of this file).

Batch norm is two Functions, because the two modes differ in what the gradient sees:

- `BatchNormTraining`: the statistics come from the batch, so they depend on x, and the
  fused backward carries the terms through the mean and the variance. The running
  statistics are updated in place by the forward (as PyTorch does), with the unbiased
  variance.
- `BatchNormEval`: the running statistics are constants, so the op is a per-channel affine
  map y = x · s + t.

Optional tensors (running statistics, weight, bias) follow x as extra positional inputs;
the attribute `inputs` names them in order, so that backward (and a tracer, such as the
ONNX exporter) knows which is which.
"""

from __future__ import annotations

import math

import numpy as np

from kinone.autograd import Function, Tensor, increment_version, is_grad_enabled

# Per-channel vectors meet the (N, C, L) view of x as a (C, L) block copied from the vector:
# NumPy runs a broadcast (C, 1) operand through a slow stride-0 inner loop (x·s on
# (16, 64, 1024) float32: 0.22 ms), while a cache-resident (C, L) block coalesces with x into
# one contiguous loop (0.146 ms, the block's copy included). Past about 2^19 elements the
# block leaves the cache and plain broadcasting is as fast (8×96×112²: 2.7 ms against 2.9 ms).
_BLOCK_ELEMENTS = 1 << 19

# Per-channel dot products Σ_l a·b run as a batched matmul of row vectors (BLAS dot kernels)
# for rows of 64 or more elements, and as einsum below that, where the per-pair call
# overhead dominates: (16, 64, 1024) 0.10 ms against 0.19 ms for einsum; (64, 256, 49)
# 0.25 ms for matmul against 0.16 ms for einsum; (256, 512, 1) 0.45 ms against 0.03 ms.
_MATMUL_MIN_ROW = 64


def _as_3d(a: np.ndarray) -> np.ndarray:
    """(N, C, *spatial) as (N, C, L) (a view when a is contiguous)."""
    return a.reshape(a.shape[0], a.shape[1], -1)


def _per_channel(vector: np.ndarray, like3: np.ndarray) -> np.ndarray:
    """A (C,) vector in like3's dtype, shaped to multiply or add into an (N, C, L) array."""
    channels, length = like3.shape[1], like3.shape[2]
    column = vector.astype(like3.dtype, copy=False).reshape(channels, 1)
    if channels * length <= _BLOCK_ELEMENTS:
        return np.broadcast_to(column, (channels, length)).copy()
    return column


def _per_channel_sum(a3: np.ndarray) -> np.ndarray:
    """Σ over dims 0 and 2 of an (N, C, L) array, as float64.

    Each row of L elements is summed in a's dtype (einsum's SIMD partial sums), and the N
    row sums of a channel are added in float64: as fast as a float32 sum (0.06 ms on
    (16, 64, 1024)) and about 7x faster than `np.sum(axis=(0, 2), dtype=np.float64)`
    (0.44 ms), which converts every element.
    """
    return np.einsum("ncl->nc", a3).sum(axis=0, dtype=np.float64)


def _per_channel_dot(a3: np.ndarray, b3: np.ndarray) -> np.ndarray:
    """Σ a·b over dims 0 and 2 of two (N, C, L) arrays, as float64 (rows in a's dtype)."""
    if a3.shape[2] >= _MATMUL_MIN_ROW:
        rows = (a3[:, :, None, :] @ b3[:, :, :, None])[:, :, 0, 0]
    else:
        rows = np.einsum("ncl,ncl->nc", a3, b3)
    return rows.sum(axis=0, dtype=np.float64)


class BatchNormTraining(Function):
    """y = x̂ · w + b with x̂ = (x - μ_B) / √(σ²_B + eps), μ_B and σ²_B (biased) per channel over
    the batch and spatial dims;  dL/dx = (w/σ) · (g - mean(g) - x̂ · mean(g · x̂)),
    dL/dw = Σ g · x̂,  dL/db = Σ g  (means and sums per channel over those N·L elements)."""

    @staticmethod
    def forward(ctx, x, *optional, inputs=(), eps=1e-5, momentum=0.1):
        given = dict(zip(inputs, optional))
        weight, bias = given.get("weight"), given.get("bias")
        x3 = _as_3d(x)
        count = x3.shape[0] * x3.shape[2]

        mean = _per_channel_sum(x3) / count
        out = x3 - _per_channel(mean, x3)  # x - μ, turned into the output in place below
        var = _per_channel_dot(out, out) / count  # biased: the one that normalises
        invstd = 1.0 / np.sqrt(var + eps)

        update_running_stats(given, mean, var, count, momentum)
        scale = scale_and_shift(out, x3, invstd, weight, bias)
        # x itself is saved (as PyTorch does), not x - μ: backward recomputes x - μ in the
        # array that becomes dx, so a training step allocates two activation-sized arrays
        # instead of three. One pass more, but fewer fresh pages: on (16, 64, 32, 32) float32,
        # saving x - μ made glibc trim and re-fault 16 MB per step (2,084 page faults,
        # 7.5-10.9 ms per forward + backward) where saving x runs in 2.4-2.8 ms with none.
        ctx.inputs = inputs
        ctx.save_for_backward(x, mean, invstd, scale)
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        x, mean, invstd, scale = ctx.saved
        grad3, x3 = _as_3d(grad), _as_3d(x)
        centred = x3 - _per_channel(mean, x3)  # becomes dx in place
        count = centred.shape[0] * centred.shape[2]
        sum_g = _per_channel_sum(grad3)  # = dL/db
        sum_g_centred = _per_channel_dot(grad3, centred)  # = dL/dw / invstd

        dx = None
        if ctx.needs_input_grad[0]:
            dx = input_grad_in_place(centred, grad3, invstd, scale, sum_g, sum_g_centred, count).reshape(grad.shape)
        grads = {"weight": invstd * sum_g_centred, "bias": sum_g}
        return (dx, *(grads.get(name) for name in ctx.inputs))


class BatchNormEval(Function):
    """y = (x - μ) / √(σ² + eps) · w + b with the running μ, σ² (constants): a per-channel affine map;
    dL/dx = g · w / √(σ² + eps),  dL/dw = Σ g · (x - μ) / √(σ² + eps),  dL/db = Σ g."""

    @staticmethod
    def forward(ctx, x, running_mean, running_var, *optional, inputs=(), eps=1e-5):
        given = dict(zip(inputs, optional))
        weight, bias = given.get("weight"), given.get("bias")
        x3 = _as_3d(x)
        invstd = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
        scale = invstd if weight is None else invstd * weight
        shift = -running_mean * scale if bias is None else bias - running_mean * scale
        out = x3 * _per_channel(scale, x3)
        out += _per_channel(shift, x3)
        ctx.inputs = inputs
        # x is kept only for dL/dw (the inputs x, running_mean, running_var come first).
        needs_x = "weight" in given and ctx.needs_input_grad[3 + inputs.index("weight")]
        ctx.save_for_backward(x if needs_x else None, running_mean, invstd, scale)
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        x, running_mean, invstd, scale = ctx.saved
        grad3 = _as_3d(grad)
        dx = (grad3 * _per_channel(scale, grad3)).reshape(grad.shape) if ctx.needs_input_grad[0] else None
        grads = {}
        if x is not None:
            x3 = _as_3d(x)
            grads["weight"] = invstd * _per_channel_dot(grad3, x3 - _per_channel(running_mean, x3))
        if "bias" in ctx.inputs:
            grads["bias"] = _per_channel_sum(grad3)
        return (dx, None, None, *(grads.get(name) for name in ctx.inputs))


def update_running_stats(given: dict, mean, var, count: int, momentum: float) -> None:
    """running = (1 - momentum) · running + momentum · batch statistic (the unbiased variance
    count / (count - 1) · var), in place, when `given` holds running_mean and running_var."""
    if "running_mean" in given:
        running_mean, running_var = given["running_mean"], given["running_var"]
        running_mean[...] = momentum * mean + (1 - momentum) * running_mean
        running_var[...] = momentum * var * (count / (count - 1)) + (1 - momentum) * running_var


def scale_and_shift(out, x3, invstd, weight, bias):
    """out (= x - μ, (N, C, L)) becomes (x - μ) · invstd · w + b in place; returns invstd · w."""
    scale = invstd if weight is None else invstd * weight
    out *= _per_channel(scale, x3)
    if bias is not None:
        out += _per_channel(bias, x3)
    return scale


def input_grad_in_place(centred, grad3, invstd, scale, sum_g, sum_g_centred, count):
    """dL/dx = scale · (g - Σg/M - (x - μ) · invstd² · Σ g·(x - μ) / M) over the M = `count`
    values of each channel, written into `centred` (x - μ, (N, C, L)), which is returned."""
    dx = centred
    dx *= _per_channel(invstd * invstd * sum_g_centred / count, centred)
    dx += _per_channel(sum_g / count, centred)
    np.subtract(grad3, dx, out=dx)
    dx *= _per_channel(scale, centred)
    return dx


def _check_vector(name: str, t, channels: int, x_shape: tuple) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"batch_norm: {name} must be a Tensor or None, got {type(t).__name__}")
    if t.shape != (channels,):
        raise ValueError(
            f"batch_norm: {name} of shape {t.shape} does not match the input of shape {x_shape}: "
            f"expected ({channels},), one value per channel (dim 1)"
        )


def batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each channel (dim 1) of x to zero mean and unit variance, then scale by
    weight and shift by bias (as torch.nn.functional.batch_norm).

    In training the batch statistics are used, and running_mean / running_var (if given)
    are updated in place: running = (1 - momentum) · running + momentum · batch statistic,
    with the unbiased batch variance. Otherwise the running statistics are used.
    """
    if x.ndim < 2:
        raise ValueError(
            f"batch_norm: expected an input of shape (N, C), (N, C, L) or (N, C, H, W), got shape {x.shape}"
        )
    if x.dtype.kind != "f":
        raise TypeError(f"batch_norm: expected a floating-point input, got dtype {x.dtype}")
    channels = x.shape[1]
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: give both running_mean and running_var, or neither")
    if running_mean is None and not training:
        raise ValueError("batch_norm: running_mean and running_var are required when training=False")
    inputs, optional = [], []
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if t is None:
            continue
        _check_vector(name, t, channels, x.shape)
        if name.startswith("running") and t.requires_grad and is_grad_enabled():
            raise ValueError(f"batch_norm: {name} is not differentiable and must not require grad (as in PyTorch)")
        inputs.append(name)
        optional.append(t)

    if training:
        if x.shape[0] * int(np.prod(x.shape[2:])) <= 1:
            raise ValueError(
                f"batch_norm: expected more than 1 value per channel when training, got input of shape {x.shape}"
            )
        out = BatchNormTraining.apply(x, *optional, inputs=tuple(inputs), eps=eps, momentum=momentum)
        if running_mean is not None:  # updated in place: a graph that saved them must notice
            increment_version(running_mean)
            increment_version(running_var)
        return out
    return BatchNormEval.apply(x, *optional, inputs=tuple(inputs[2:]), eps=eps)


# ---------------------------------------------------------------------------- layer and group norm
# Both normalise rows of an (M, D) view of x: layer norm's rows are the trailing
# `normalized_shape` dims of each sample, group norm's the C/G channels (and their spatial
# positions) of one group of one sample. They differ only in where the affine map applies.
def _normalize_rows(x2, eps: float):
    """(x̂, 1/σ) for the rows of an (M, D) array: x̂ = (x - μ) / √(σ² + eps) with μ and the
    biased σ² over each row of D values; 1/σ of shape (M, 1). Two passes (mean, then the
    centred squares), so that a large common offset does not cancel digits."""
    mean = x2.mean(axis=1, keepdims=True)
    xhat = x2 - mean
    var = (xhat * xhat).mean(axis=1, keepdims=True)
    invstd = 1 / np.sqrt(var + eps)
    xhat *= invstd
    return xhat, invstd


def _rows_input_grad(gxhat2, xhat2, invstd):
    """dL/dx = (1/σ) · (ĝ - mean(ĝ) - x̂ · mean(ĝ · x̂)) per row of D values, ĝ = dL/dx̂."""
    dx = xhat2 * (gxhat2 * xhat2).mean(axis=1, keepdims=True)
    dx += gxhat2.mean(axis=1, keepdims=True)
    np.subtract(gxhat2, dx, out=dx)
    dx *= invstd
    return dx


class LayerNorm(Function):
    """y = x̂ · w + b with x̂ = (x - μ) / √(σ² + eps), μ and σ² (biased) over the last
    k = len(normalized_shape) dims of each sample, w and b of shape normalized_shape;
    dL/dx = (1/σ) · (ĝ - mean(ĝ) - x̂ · mean(ĝ · x̂)) with ĝ = g · w (means over those D values),
    dL/dw = Σ g · x̂,  dL/db = Σ g  (sums over the leading dims)."""

    @staticmethod
    def forward(ctx, x, *optional, inputs=(), normalized_ndim=1, eps=1e-5):
        given = dict(zip(inputs, optional))
        weight, bias = given.get("weight"), given.get("bias")
        features = math.prod(x.shape[x.ndim - normalized_ndim :])
        xhat, invstd = _normalize_rows(x.reshape(-1, features), eps)
        out = xhat * weight.reshape(-1).astype(x.dtype, copy=False) if weight is not None else xhat.copy()
        if bias is not None:
            out += bias.reshape(-1).astype(x.dtype, copy=False)
        ctx.inputs = inputs
        ctx.save_for_backward(xhat, invstd, weight)
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        xhat, invstd, weight = ctx.saved
        grad2 = grad.reshape(xhat.shape)
        dx = None
        if ctx.needs_input_grad[0]:
            gxhat = grad2 if weight is None else grad2 * weight.reshape(-1).astype(grad.dtype, copy=False)
            dx = _rows_input_grad(gxhat, xhat, invstd).reshape(grad.shape)
        shape = grad.shape[grad.ndim - ctx.attrs["normalized_ndim"] :]
        grads = {}
        if "weight" in ctx.inputs:
            grads["weight"] = (grad2 * xhat).sum(axis=0).reshape(shape)
        if "bias" in ctx.inputs:
            grads["bias"] = grad2.sum(axis=0).reshape(shape)
        return (dx, *(grads.get(name) for name in ctx.inputs))


class GroupNorm(Function):
    """y = x̂ · w_c + b_c with x̂ = (x - μ) / √(σ² + eps), μ and σ² (biased) over each group of
    C/G channels (and all their positions) of each sample, w and b per channel;
    dL/dx = (1/σ) · (ĝ - mean(ĝ) - x̂ · mean(ĝ · x̂)) with ĝ = g · w_c (means over the group),
    dL/dw_c = Σ g · x̂,  dL/db_c = Σ g  (sums over the batch and the positions of channel c)."""

    @staticmethod
    def forward(ctx, x, *optional, inputs=(), num_groups=1, eps=1e-5):
        given = dict(zip(inputs, optional))
        weight, bias = given.get("weight"), given.get("bias")
        batch, channels = x.shape[0], x.shape[1]
        xhat, invstd = _normalize_rows(x.reshape(batch * num_groups, -1), eps)
        xhat3 = xhat.reshape(batch, channels, -1)
        out = xhat3 * weight.astype(x.dtype, copy=False)[:, None] if weight is not None else xhat3.copy()
        if bias is not None:
            out += bias.astype(x.dtype, copy=False)[:, None]
        ctx.inputs = inputs
        ctx.save_for_backward(xhat, invstd, weight)
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        xhat, invstd, weight = ctx.saved
        batch, channels = grad.shape[0], grad.shape[1]
        grad3 = grad.reshape(batch, channels, -1)
        dx = None
        if ctx.needs_input_grad[0]:
            gxhat = grad3 if weight is None else grad3 * weight.astype(grad.dtype, copy=False)[:, None]
            dx = _rows_input_grad(gxhat.reshape(xhat.shape), xhat, invstd).reshape(grad.shape)
        grads = {}
        if "weight" in ctx.inputs:
            grads["weight"] = (grad3 * xhat.reshape(grad3.shape)).sum(axis=(0, 2))
        if "bias" in ctx.inputs:
            grads["bias"] = grad3.sum(axis=(0, 2))
        return (dx, *(grads.get(name) for name in ctx.inputs))


def _affine_inputs(op: str, weight, bias, shape: tuple, expected: str) -> tuple[tuple, tuple]:
    """(names, tensors) of the given weight and bias, each checked to have `shape`."""
    names, tensors = [], []
    for name, t in (("weight", weight), ("bias", bias)):
        if t is None:
            continue
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor or None, got {type(t).__name__}")
        if tuple(t.shape) != shape:
            raise ValueError(f"{op}: {name} of shape {t.shape} does not match: expected {shape} ({expected})")
        names.append(name)
        tensors.append(t)
    return tuple(names), tuple(tensors)


def _check_floating(op: str, x) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point input, got dtype {x.dtype}")


def layer_norm(
    input: Tensor, normalized_shape, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5
) -> Tensor:
    """Normalise over the last len(normalized_shape) dims of input to zero mean and unit
    (biased) variance, then scale by weight and shift by bias, both of shape normalized_shape
    (as torch.nn.functional.layer_norm)."""
    op = "layer_norm"
    _check_floating(op, input)
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(normalized_shape)
    if k == 0 or input.ndim < k or tuple(input.shape[input.ndim - k :]) != normalized_shape:
        raise ValueError(
            f"{op}: input of shape {input.shape} does not end in normalized_shape {list(normalized_shape)}: "
            f"expected an input of shape (*, {', '.join(map(str, normalized_shape))})"
        )
    names, tensors = _affine_inputs(op, weight, bias, normalized_shape, "normalized_shape")
    return LayerNorm.apply(input, *tensors, inputs=names, normalized_ndim=k, eps=float(eps))


def group_norm(
    input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5
) -> Tensor:
    """Normalise each group of C / num_groups channels of each sample (over those channels and
    all positions) to zero mean and unit (biased) variance, then scale and shift per channel
    (as torch.nn.functional.group_norm); input (N, C, *)."""
    op = "group_norm"
    _check_floating(op, input)
    if input.ndim < 2:
        raise ValueError(f"{op}: expected an input of shape (N, C, *), got shape {input.shape}")
    channels = input.shape[1]
    if not isinstance(num_groups, int) or num_groups <= 0 or channels % num_groups:
        raise ValueError(
            f"{op}: the {channels} channels of input {input.shape} must divide into num_groups={num_groups}"
        )
    names, tensors = _affine_inputs(op, weight, bias, (channels,), "one value per channel (dim 1)")
    return GroupNorm.apply(input, *tensors, inputs=names, num_groups=num_groups, eps=float(eps))


def instance_norm(
    input: Tensor,
    running_mean: Tensor | None = None,
    running_var: Tensor | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each channel of each sample over its positions (input (N, C, *)), then scale and
    shift per channel (as torch.nn.functional.instance_norm). With use_input_stats the
    statistics are the sample's, and running_mean / running_var (if given) are updated in
    place with their average over the batch (the unbiased variance); otherwise the running
    statistics are used, as batch norm in eval mode."""
    op = "instance_norm"
    _check_floating(op, input)
    if input.ndim < 3:
        raise ValueError(
            f"{op}: expected an input of shape (N, C, L), (N, C, H, W) or (N, C, D, H, W), got shape {input.shape}"
        )
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: give both running_mean and running_var, or neither")
    if not use_input_stats:
        if running_mean is None:
            raise ValueError(f"{op}: running_mean and running_var are required when use_input_stats=False")
        return batch_norm(input, running_mean, running_var, weight, bias, training=False, eps=eps)
    positions = math.prod(input.shape[2:])
    if positions <= 1:
        raise ValueError(f"{op}: expected more than 1 spatial element when training, got input of shape {input.shape}")
    out = group_norm(input, input.shape[1], weight, bias, eps)
    if running_mean is not None:
        _update_instance_running_stats(input, running_mean, running_var, positions, momentum)
    return out


def _update_instance_running_stats(
    x: Tensor, running_mean: Tensor, running_var: Tensor, positions: int, momentum: float
) -> None:
    """running = (1 - momentum) · running + momentum · (the batch's average of each sample's
    statistic), the variance unbiased (positions / (positions - 1)), as PyTorch."""
    for name, t in (("running_mean", running_mean), ("running_var", running_var)):
        _check_vector(name, t, x.shape[1], x.shape)
    x3 = x.data.reshape(x.shape[0], x.shape[1], -1)
    mean = x3.mean(axis=2)
    var = x3.var(axis=2) * (positions / (positions - 1))
    for running, stat in ((running_mean, mean), (running_var, var)):
        update = momentum * stat.mean(axis=0) + (1 - momentum) * running.data
        running.data[...] = update.astype(running.dtype, copy=False)
        increment_version(running)
