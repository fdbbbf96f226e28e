"""`SyncBatchNorm`: batch norm whose training statistics are those of the global batch.

With N ranks of B samples each, plain BatchNorm2d normalises each rank's B samples by their
own mean and variance; SyncBatchNorm uses the mean and variance over all N·B samples, so a
step computes what one process with the whole batch would (PyTorch's `SyncBatchNorm`). The
cost is three small allreduces per layer per step (C + 1 and C values in forward, 2C in
backward), all in float64.

In eval mode, and in one process, it is plain batch norm (`BatchNormEval` exports to ONNX as
BatchNormalization, as BatchNorm2d does).
"""

from __future__ import annotations

import numpy as np

from kinone.autograd import Function, Tensor, backend, is_grad_enabled
from kinone.nn import BatchNorm1d, BatchNorm2d, Module
from kinone.nn.functional.normalization import (
    _as_3d,
    _per_channel,
    _per_channel_dot,
    _per_channel_sum,
    input_grad_in_place,
    scale_and_shift,
    update_running_stats,
)

from .runtime import active_comm, mpi, world_size


def _sum_across_ranks(values: np.ndarray) -> np.ndarray:
    """values (a small float64 host array) summed over every rank (itself in one process)."""
    comm = active_comm()
    if comm is None:
        return values
    values = np.ascontiguousarray(values, dtype=np.float64)
    comm.Allreduce(mpi().IN_PLACE, values)
    return values


class SyncBatchNormTraining(Function):
    """Batch norm with the global batch's statistics: over every rank's x (M values per channel
    in all), μ = Σ x / M, σ² = Σ (x - μ)² / M (biased), x̂ = (x - μ) / √(σ² + eps), and
    y = x̂ · w + b on each rank's x;
    dL/dx = (w/σ) · (g - Σ g / M - x̂ · Σ (g · x̂) / M)  (the two sums over every rank),
    dL/dw = Σ g · x̂,  dL/db = Σ g  (sums over this rank's elements: the gradient
    allreduce then averages them, as for every other parameter).

    Here L is the sum of the ranks' losses, each rank's g being its own loss's gradient; the
    running statistics get the global μ and the unbiased global variance σ² · M / (M - 1).
    """

    @staticmethod
    def forward(ctx, x, *optional, inputs=(), eps=1e-5, momentum=0.1):
        given = dict(zip(inputs, optional))
        weight, bias = given.get("weight"), given.get("bias")
        x3 = _as_3d(x)
        local_count = x3.shape[0] * x3.shape[2]

        sums = _sum_across_ranks(np.append(backend.to_host(_per_channel_sum(x3)), local_count))
        count = sums[-1]
        if count <= 1:
            raise ValueError(
                f"SyncBatchNorm: expected more than 1 value per channel over all ranks, got {count:.0f} "
                f"(input of shape {x.shape} on this rank)"
            )
        mean = backend.as_array(sums[:-1] / count, x)
        out = x3 - _per_channel(mean, x3)  # x - μ, turned into the output in place below
        var = backend.as_array(_sum_across_ranks(backend.to_host(_per_channel_dot(out, out))) / count, x)
        invstd = 1.0 / backend.get_array_module(var).sqrt(var + eps)

        update_running_stats(given, mean, var, count, momentum)
        scale = scale_and_shift(out, x3, invstd, weight, bias)
        ctx.inputs, ctx.count = inputs, count
        ctx.save_for_backward(x, mean, invstd, scale)
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        x, mean, invstd, scale = ctx.saved
        grad3, x3 = _as_3d(grad), _as_3d(x)
        centred = x3 - _per_channel(mean, x3)  # becomes dx in place
        sum_g = _per_channel_sum(grad3)  # this rank's: = dL/db
        sum_g_centred = _per_channel_dot(grad3, centred)  # this rank's: = dL/dw / invstd
        grads = {"weight": invstd * sum_g_centred, "bias": sum_g}

        dx = None
        if ctx.needs_input_grad[0]:
            channels = sum_g.shape[0]
            sums = _sum_across_ranks(np.concatenate([backend.to_host(sum_g), backend.to_host(sum_g_centred)]))
            total_g = backend.as_array(sums[:channels], x)
            total_g_centred = backend.as_array(sums[channels:], x)
            # The sums over every rank's values (M = ctx.count of them per channel).
            dx = input_grad_in_place(centred, grad3, invstd, scale, total_g, total_g_centred, ctx.count)
            dx = dx.reshape(grad.shape)
        return (dx, *(grads.get(name) for name in ctx.inputs))


def sync_batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch norm in training mode with statistics over every rank's batch (see
    `SyncBatchNormTraining`); running_mean / running_var (if given) are updated in place,
    identically on every rank. Every rank must call it, in the same order."""
    if x.ndim < 2:
        raise ValueError(f"sync_batch_norm: expected an input of shape (N, C, *), got shape {x.shape}")
    if x.dtype.kind != "f":
        raise TypeError(f"sync_batch_norm: expected a floating-point input, got dtype {x.dtype}")
    if (running_mean is None) != (running_var is None):
        raise ValueError("sync_batch_norm: give both running_mean and running_var, or neither")
    channels = x.shape[1]
    inputs, optional = [], []
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if t is None:
            continue
        if not isinstance(t, Tensor) or t.shape != (channels,):
            shape = t.shape if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(
                f"sync_batch_norm: {name} must be a Tensor of shape ({channels},) for an input of shape {x.shape}, got {shape}"
            )
        if name.startswith("running") and t.requires_grad and is_grad_enabled():
            raise ValueError(f"sync_batch_norm: {name} is not differentiable and must not require grad")
        inputs.append(name)
        optional.append(t)
    return SyncBatchNormTraining.apply(x, *optional, inputs=tuple(inputs), eps=eps, momentum=momentum)


class SyncBatchNorm(BatchNorm2d):
    """BatchNorm2d (same parameters, buffers and state-dict keys) whose training-mode statistics
    are over the global batch of every rank (PyTorch's `torch.nn.SyncBatchNorm`). Takes
    (N, C), (N, C, L), (N, C, H, W) or (N, C, D, H, W) inputs.

    In eval mode, without running statistics outside training, or with one rank, it is plain
    batch norm. `SyncBatchNorm.convert_sync_batchnorm(model)` converts a model's batch norms.
    """

    expected_dims = (2, 3, 4, 5)

    def forward(self, x):
        if not self.training or world_size() == 1:
            return super().forward(x)
        if x.ndim not in self.expected_dims:
            raise ValueError(f"SyncBatchNorm: expected an input of 2 to 5 dims, got shape {x.shape}")
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked.data)
        return sync_batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, momentum, self.eps)

    @classmethod
    def convert_sync_batchnorm(cls, module: Module) -> Module:
        """See `convert_sync_batchnorm`."""
        return convert_sync_batchnorm(module)


def convert_sync_batchnorm(module: Module) -> Module:
    """Replace every BatchNorm1d and BatchNorm2d of `module` by a SyncBatchNorm holding the same
    Parameter and buffer objects (an optimizer built before still steps them; state-dict keys
    and their order are unchanged), in the same train/eval mode. Forward hooks stay with the
    old module, as in PyTorch. Returns the converted module: `module` itself unless it is a
    batch norm."""
    if isinstance(module, (BatchNorm1d, BatchNorm2d)) and not isinstance(module, SyncBatchNorm):
        return _sync_copy(module)
    for name, child in list(module._modules.items()):
        if child is not None:
            # Assigned in the registry directly: Module.__setattr__ would move the key to the end.
            module._modules[name] = convert_sync_batchnorm(child)
    return module


def _sync_copy(bn) -> SyncBatchNorm:
    sync = SyncBatchNorm.__new__(SyncBatchNorm)
    Module.__init__(sync)
    for name in ("num_features", "eps", "momentum", "affine", "track_running_stats", "training"):
        object.__setattr__(sync, name, getattr(bn, name))
    sync._parameters.update(bn._parameters)
    sync._buffers.update(bn._buffers)
    sync._non_persistent_buffers.update(bn._non_persistent_buffers)
    return sync
