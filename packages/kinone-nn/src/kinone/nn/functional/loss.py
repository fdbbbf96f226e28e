"""Losses, each one Function with a fused backward, with PyTorch's names, arguments and
normalisation.

Class-index losses (cross_entropy, nll_loss) take input (N, C), (N, C, d1, ...) or (C,) and an
integer target (N,), (N, d1, ...) or () respectively. With `weight`, sample i counts w[t_i];
"mean" divides by the sum of the counted samples' weights (Σ w[t_i] over the samples whose
target is not ignore_index), not by their number. `weight` and `pos_weight` are constants:
as in PyTorch, they may not require grad.

Targets and weights live on the input's device (a CPU target with a CUDA input is an error
naming the op, as in PyTorch); a reduced loss is a 0-d array on that device.
"""

from __future__ import annotations

import numpy as np

from kinone.autograd import Function, Tensor, is_grad_enabled
from kinone.autograd.backend import get_array_module
from kinone.autograd.ops.elementwise import stable_sigmoid

REDUCTIONS = ("none", "mean", "sum")


# ---------------------------------------------------------------------------- shared checks
def _check_reduction(op: str, reduction) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of 'none', 'mean' or 'sum', got {reduction!r}")


def _as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _constant(op: str, name: str, t) -> Tensor | None:
    """A weight-like argument as a Tensor (or None); it must not require grad."""
    if t is None:
        return None
    t = _as_tensor(t)
    if t.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be floating-point, got dtype {t.dtype}")
    if t.requires_grad and is_grad_enabled():
        raise ValueError(
            f"{op}: {name} is not differentiable and must not require grad (as in PyTorch); pass {name}.detach()"
        )
    return t


def _check_input(op: str, x) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: input must be floating-point, got dtype {x.dtype}")


def _class_target(op: str, x: Tensor, target, weight: Tensor | None, ignore_index: int) -> Tensor:
    """Check an integer class-index target against input x (class dim 1, or 0 for (C,))."""
    if x.ndim == 0:
        raise ValueError(f"{op}: input must have a class dim: (N, C), (N, C, d1, ...) or (C,), got shape ()")
    target = _as_tensor(target)
    if target.dtype.kind not in "iu":
        raise TypeError(
            f"{op}: target must hold integer class indices (e.g. int64), got dtype {target.dtype}"
            + ("; class-probability (soft) targets are not supported" if target.dtype.kind == "f" else "")
        )
    expected = () if x.ndim == 1 else (x.shape[0],) + x.shape[2:]
    if target.shape != expected:
        layout = "(C,) needs a 0-d target" if x.ndim == 1 else "(N, C, d1, ...) needs a target of shape (N, d1, ...)"
        raise ValueError(
            f"{op}: target of shape {target.shape} does not match input of shape {x.shape}: "
            f"expected target shape {expected} (an input {layout})"
        )
    classes = x.shape[1 if x.ndim > 1 else 0]
    if weight is not None and weight.shape != (classes,):
        raise ValueError(f"{op}: weight of shape {weight.shape} must have one entry per class: expected ({classes},)")
    t = target.data
    bad = ((t < 0) | (t >= classes)) & (t != ignore_index)
    if bad.any():  # on a CUDA device, the one wait for the device in the loss
        raise IndexError(
            f"{op}: target value {int(t[bad].reshape(-1)[0])} is out of range for {classes} classes "
            f"(expected 0 <= target < {classes}, or ignore_index={ignore_index})"
        )
    return target


def _class_axis(x: np.ndarray) -> int:
    return 1 if x.ndim > 1 else 0


def _target_weights(x, target, weight, ignore_index):
    """(safe target, counted mask, per-sample weight w[t_i] · counted) for class-index losses.

    Ignored entries get the safe class 0 (any valid index) so that gathers need no mask."""
    counted = target != ignore_index
    safe = np.where(counted, target, 0)
    if weight is None:
        sample_weight = counted.astype(x.dtype)
    else:
        sample_weight = weight.astype(x.dtype, copy=False)[safe]
        sample_weight *= counted
    return safe, counted, sample_weight


def _reduce(loss: np.ndarray, reduction: str, normaliser):
    """Apply the reduction; "mean" divides by `normaliser` (0/0 gives nan, as PyTorch)."""
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    with np.errstate(divide="ignore", invalid="ignore"):
        return get_array_module(loss).asarray(total / normaliser, dtype=loss.dtype)


def _grad_scale(grad: np.ndarray, reduction: str, normaliser, dtype) -> np.ndarray:
    """The upstream gradient per loss element: g itself, or the scalar g (/ normaliser)."""
    if reduction == "none":
        return grad
    if reduction == "sum":
        return grad.astype(dtype, copy=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        return get_array_module(grad).asarray(grad / normaliser, dtype=dtype)


def _sample_scale(grad: np.ndarray, reduction: str, normaliser, counted: np.ndarray, dtype) -> np.ndarray:
    """s_i for class-index losses: 0 where the target is ignored, even when every target is
    (the mean's 0/0), as PyTorch; a counted sample of weight 0 in a zero-weight mean gives nan."""
    return np.where(counted, _grad_scale(grad, reduction, normaliser, dtype), 0).astype(dtype, copy=False)


# ---------------------------------------------------------------------------- cross-entropy
def _softmax_shift(x: np.ndarray, axis: int):
    """What to subtract from x before exp so that exp neither overflows nor loses a row to
    underflow: nothing (None), one scalar (the global max), or the max of each row.

    Every row keeps its terms that matter as normal numbers when its max lies within
    h = -log(tiny) / 2 (43.7 for float32, 354 for float64) below the shift, and then
    1 / Σ exp < exp(h) too, so scaling it by any gradient short of 1e19 stays finite. So
    logits whose row maxima all lie in [-h, h - log C] need no shift at all, and rows whose
    maxima are within h of each other can share one scalar shift. Either saves a pass over
    (N, C): CE forward + backward on (256, 1000) float32 takes 300 µs unshifted, 330 µs with
    a scalar shift (x - M: 29 µs) and 360 µs with per-row shifts (x - max as a broadcast
    column: 55-80 µs); the float32 results agree with float64 equally well (1e-7 relative)
    either way.

    On a CUDA device the choice would make the host wait for the device (it reads the maxima),
    so there every row is shifted by its own max: the third case, which the CPU also runs.
    """
    row_max = np.amax(x, axis=axis, keepdims=True)
    if row_max.size and get_array_module(x) is np:
        top, bottom = row_max.max(), row_max.min()
        half_range = -0.5 * np.log(np.finfo(x.dtype).tiny)
        if -half_range <= bottom and top + np.log(x.shape[axis]) <= half_range:  # False for nan / inf
            return None
        if top - bottom <= half_range:
            return top
    return row_max


def _sum_classes(a: np.ndarray, axis: int) -> np.ndarray:
    """Σ over the class axis, kept as a size-1 axis. einsum's SIMD row sums: 22 µs on
    (256, 1000) float32 against 57 µs for np.sum(axis=1) (pairwise, a poor fit to short rows)."""
    dims = list(range(a.ndim))
    return np.expand_dims(np.einsum(a, dims, [d for d in dims if d != axis]), axis)


class CrossEntropy(Function):
    """y = reduce(ℓ) with ℓ_i = (1 - ε) · w_{t_i} · (-log p_{i,t_i}) + (ε / C) · Σ_c w_c · (-log p_{i,c}),
    p = softmax(x) over the class dim, ℓ_i = 0 where t_i = ignore_index;
    dL/dx_i = s_i · (p_i · ((1 - ε) w_{t_i} + (ε / C) Σ_c w_c) - (1 - ε) w_{t_i} · onehot(t_i) - (ε / C) · w),
    s_i = g_i (none), g (sum) or g / Σ_i w_{t_i} (mean); unweighted: s_i · (p_i - smoothed one-hot)."""

    @staticmethod
    def forward(ctx, x, target, weight=None, *, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        axis = _class_axis(x)
        classes = x.shape[axis]
        safe, counted, sample_weight = _target_weights(x, target, weight, ignore_index)
        target_index = np.expand_dims(safe, axis)

        # log p = shifted - log Σ exp(shifted), with shifted = x - shift chosen so that exp
        # neither overflows nor underflows a whole row (stable for |x| ~ 1e4).
        shift = _softmax_shift(x, axis)
        shifted = x if shift is None else x - shift
        exps = np.exp(shifted)
        sum_exp = _sum_classes(exps, axis)
        log_sum_exp = np.log(sum_exp)
        # softmax = exps / sum_exp is never formed: backward folds 1 / sum_exp into its
        # per-sample coefficient, one pass over (N, C) instead of two. Forward + backward on
        # (256, 1000) float32, per-row shifts: 449 µs normalising here, 397 µs folded.
        inv_sum_exp = 1 / sum_exp
        log_p_target = np.squeeze(np.take_along_axis(shifted, target_index, axis) - log_sum_exp, axis)
        nll = -log_p_target * sample_weight
        normaliser = sample_weight.sum() if reduction == "mean" else None
        ctx.axis, ctx.reduction, ctx.normaliser = axis, reduction, normaliser
        ctx.label_smoothing, ctx.weight_total = label_smoothing, None
        ctx.save_for_backward(exps, inv_sum_exp, target_index, counted, sample_weight, weight)
        if not label_smoothing:
            return _reduce(nll, reduction, normaliser)

        lse = np.squeeze(log_sum_exp, axis)
        if weight is None:
            smooth = classes * lse - np.squeeze(_sum_classes(shifted, axis), axis)  # -Σ_c log p_c
            ctx.weight_total = classes
        else:
            w = weight.astype(x.dtype, copy=False)
            smooth = w.sum() * lse - np.moveaxis(shifted, axis, -1) @ w  # -Σ_c w_c log p_c
            ctx.weight_total = w.sum()
        smooth *= counted
        # The two terms are reduced separately, as PyTorch does: they differ only when the
        # mean's normaliser is 0, where PyTorch gives nan (0/0 + x/0), not inf.
        loss = (1 - label_smoothing) * _reduce(nll, reduction, normaliser)
        loss += (label_smoothing / classes) * _reduce(smooth, reduction, normaliser)
        return get_array_module(x).asarray(loss, dtype=x.dtype)

    @staticmethod
    def backward(ctx, grad):
        exps, inv_sum_exp, target_index, counted, sample_weight, weight = ctx.saved
        if not ctx.needs_input_grad[0]:
            return (None,) * len(ctx.needs_input_grad)
        axis, smoothing = ctx.axis, ctx.label_smoothing
        scale = _sample_scale(grad, ctx.reduction, ctx.normaliser, counted, exps.dtype)
        with np.errstate(invalid="ignore"):  # inf · 0 = nan only for a mean over zero total weight
            at_target = scale * sample_weight  # s_i · w_{t_i} (0 where ignored)
            if smoothing:
                spread = (smoothing / exps.shape[axis]) * scale  # s_i · ε / C
                at_target = (1 - smoothing) * at_target
                dx = exps * (np.expand_dims(at_target + spread * ctx.weight_total, axis) * inv_sum_exp)
                if weight is None:
                    dx -= np.expand_dims(spread, axis)
                else:
                    w = weight.astype(exps.dtype, copy=False).reshape((-1,) + (1,) * (exps.ndim - axis - 1))
                    dx -= np.expand_dims(spread, axis) * w
            else:
                dx = exps * (np.expand_dims(at_target, axis) * inv_sum_exp)  # p_i · s_i · w_{t_i}
        # Subtract at each sample's target class (one entry per sample: no duplicates).
        target_column = np.take_along_axis(dx, target_index, axis) - np.expand_dims(at_target, axis)
        np.put_along_axis(dx, target_index, target_column, axis)
        return (dx, *(None,) * (len(ctx.needs_input_grad) - 1))


def cross_entropy(
    input: Tensor,
    target,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy between softmax(input) over dim 1 (dim 0 for a (C,) input) and integer
    class targets, with optional class weights, ignore_index and label smoothing ε: the
    target distribution is (1 - ε) · one-hot + ε / C (as torch.nn.functional.cross_entropy)."""
    op = "cross_entropy"
    _check_input(op, input)
    _check_reduction(op, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    weight = _constant(op, "weight", weight)
    target = _class_target(op, input, target, weight, ignore_index)
    tensors = (input, target) if weight is None else (input, target, weight)
    return CrossEntropy.apply(
        *tensors, ignore_index=int(ignore_index), reduction=reduction, label_smoothing=float(label_smoothing)
    )


# ---------------------------------------------------------------------------- negative log-likelihood
class NLL(Function):
    """y = reduce(ℓ) with ℓ_i = -w_{t_i} · x_{i,t_i} (0 where t_i = ignore_index);
    dL/dx_{i,c} = -s_i · w_{t_i} if c = t_i else 0, s_i = g_i (none), g (sum) or g / Σ_i w_{t_i} (mean)."""

    @staticmethod
    def forward(ctx, x, target, weight=None, *, ignore_index=-100, reduction="mean"):
        axis = _class_axis(x)
        safe, counted, sample_weight = _target_weights(x, target, weight, ignore_index)
        target_index = np.expand_dims(safe, axis)
        loss = -np.squeeze(np.take_along_axis(x, target_index, axis), axis) * sample_weight
        normaliser = sample_weight.sum() if reduction == "mean" else None
        ctx.axis, ctx.reduction, ctx.normaliser = axis, reduction, normaliser
        ctx.shape, ctx.dtype = x.shape, x.dtype
        ctx.save_for_backward(target_index, counted, sample_weight)
        return _reduce(loss, reduction, normaliser)

    @staticmethod
    def backward(ctx, grad):
        target_index, counted, sample_weight = ctx.saved
        if not ctx.needs_input_grad[0]:
            return (None,) * len(ctx.needs_input_grad)
        scale = _sample_scale(grad, ctx.reduction, ctx.normaliser, counted, ctx.dtype)
        dx = get_array_module(sample_weight).zeros(ctx.shape, dtype=ctx.dtype)
        with np.errstate(invalid="ignore"):  # inf · 0 = nan only for a mean over zero total weight
            at_target = -scale * sample_weight
        np.put_along_axis(dx, target_index, np.expand_dims(at_target, ctx.axis), ctx.axis)
        return (dx, *(None,) * (len(ctx.needs_input_grad) - 1))


def nll_loss(
    input: Tensor, target, weight: Tensor | None = None, ignore_index: int = -100, reduction: str = "mean"
) -> Tensor:
    """Negative log-likelihood of log-probabilities input (class dim 1, or 0 for (C,)) at the
    integer class targets (as torch.nn.functional.nll_loss)."""
    op = "nll_loss"
    _check_input(op, input)
    _check_reduction(op, reduction)
    weight = _constant(op, "weight", weight)
    target = _class_target(op, input, target, weight, ignore_index)
    tensors = (input, target) if weight is None else (input, target, weight)
    return NLL.apply(*tensors, ignore_index=int(ignore_index), reduction=reduction)


# ---------------------------------------------------------------------------- binary cross-entropy
def _softplus_neg(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(-x)) = max(-x, 0) + log(1 + exp(-|x|)): exp is only taken of -|x| <= 0,
    so it is finite for any finite x (1e4 included) and exact where log1p matters."""
    return np.maximum(-x, 0) + np.log1p(np.exp(-np.abs(x)))


class BCEWithLogits(Function):
    """y = w · ((1 - t) · x + l · log(1 + exp(-x))) with l = 1 + (pos_weight - 1) · t, then reduced;
    dL/dx = s · w · ((1 - t) - l · σ(-x)),  dL/dt = s · w · (-x + (pos_weight - 1) · log(1 + exp(-x))),
    s = g (none, sum) or g / numel (mean)."""

    @staticmethod
    def forward(ctx, x, target, *optional, inputs=(), reduction="mean"):
        given = dict(zip(inputs, optional))
        t = target.astype(x.dtype, copy=False)
        weight = given.get("weight")
        pos_weight = given.get("pos_weight")
        if weight is not None:
            weight = weight.astype(x.dtype, copy=False)
        if pos_weight is not None:
            pos_weight = pos_weight.astype(x.dtype, copy=False)
        softplus_neg = _softplus_neg(x)  # -log σ(x)
        positive_term = softplus_neg if pos_weight is None else (1 + (pos_weight - 1) * t) * softplus_neg
        loss = (1 - t) * x + positive_term
        if weight is not None:
            loss *= weight
        ctx.reduction, ctx.count = reduction, x.size
        keep_softplus = ctx.needs_input_grad[1] and pos_weight is not None  # only dL/dt needs it
        ctx.save_for_backward(x, t, weight, pos_weight, softplus_neg if keep_softplus else None)
        return _reduce(loss, reduction, x.size)

    @staticmethod
    def backward(ctx, grad):
        x, t, weight, pos_weight, softplus_neg = ctx.saved
        scale = _grad_scale(grad, ctx.reduction, ctx.count, x.dtype)
        if weight is not None:
            scale = scale * weight
        dx = dt = None
        if ctx.needs_input_grad[0]:
            sigmoid_neg = stable_sigmoid(-x)  # σ(-x) = 1 - σ(x), exact for large x
            if pos_weight is not None:
                sigmoid_neg *= 1 + (pos_weight - 1) * t
            dx = scale * ((1 - t) - sigmoid_neg)
        if ctx.needs_input_grad[1]:
            dt = -x if pos_weight is None else (pos_weight - 1) * softplus_neg - x
            dt = scale * dt
        return (dx, dt, *(None,) * (len(ctx.needs_input_grad) - 2))


def binary_cross_entropy_with_logits(
    input: Tensor,
    target,
    weight: Tensor | None = None,
    pos_weight: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Binary cross-entropy of sigmoid(input) against target probabilities, computed from the
    logits without overflow (as torch.nn.functional.binary_cross_entropy_with_logits).

    `weight` rescales each element (it broadcasts to input's shape); `pos_weight` rescales the
    positive term and broadcasts against the last (class) dim, e.g. shape (C,) for (N, C).
    Gradients flow to input and to target."""
    op = "binary_cross_entropy_with_logits"
    _check_input(op, input)
    _check_reduction(op, reduction)
    target = _as_tensor(target)
    if target.dtype.kind != "f":
        raise TypeError(f"{op}: target must be floating-point (probabilities in [0, 1]), got dtype {target.dtype}")
    if target.shape != input.shape:
        raise ValueError(f"{op}: target of shape {target.shape} must have the same shape as input {input.shape}")
    inputs, optional = [], []
    for name, t in (("weight", weight), ("pos_weight", pos_weight)):
        t = _constant(op, name, t)
        if t is None:
            continue
        try:
            broadcast = np.broadcast_shapes(t.shape, input.shape)
        except ValueError:
            broadcast = None
        if broadcast != input.shape:
            hint = " (one entry per class of the last dim)" if name == "pos_weight" else ""
            raise ValueError(
                f"{op}: {name} of shape {t.shape} does not broadcast to the input's shape {input.shape}{hint}"
            )
        inputs.append(name)
        optional.append(t)
    return BCEWithLogits.apply(input, target, *optional, inputs=tuple(inputs), reduction=reduction)


# ---------------------------------------------------------------------------- mean squared error
class MSE(Function):
    """y = (x - t)², then reduced;  dL/dx = 2 · s · (x - t),  dL/dt = -dL/dx,
    s = g (none, sum) or g / numel (mean)."""

    @staticmethod
    def forward(ctx, x, target, *, reduction="mean"):
        diff = x - target.astype(x.dtype, copy=False)
        ctx.reduction, ctx.count = reduction, x.size
        ctx.save_for_backward(diff)
        return _reduce(diff * diff, reduction, x.size)

    @staticmethod
    def backward(ctx, grad):
        (diff,) = ctx.saved
        scale = _grad_scale(grad, ctx.reduction, ctx.count, diff.dtype)
        dx = (2 * scale) * diff
        return (dx if ctx.needs_input_grad[0] else None, -dx if ctx.needs_input_grad[1] else None)


def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """Squared differences (input - target)², reduced (as torch.nn.functional.mse_loss, except
    that a target of another shape is an error rather than a broadcast with a warning)."""
    op = "mse_loss"
    _check_input(op, input)
    _check_reduction(op, reduction)
    target = _as_tensor(target)
    if target.shape != input.shape:
        raise ValueError(f"{op}: target of shape {target.shape} must have the same shape as input {input.shape}")
    return MSE.apply(input, target, reduction=reduction)


# ---------------------------------------------------------------------------- elementwise losses
def legacy_reduction(size_average, reduce, reduction: str) -> str:
    """PyTorch's deprecated size_average / reduce flags as a reduction (they win when given, as
    in torch: reduce=False is "none", else size_average=False is "sum", else "mean")."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    return "none" if not reduce else ("mean" if size_average else "sum")


def _pointwise_target(op: str, input: Tensor, target) -> Tensor:
    """A floating-point target of input's shape (the elementwise losses do not broadcast it:
    PyTorch warns that a broadcast target is most likely a mistake; here it is an error)."""
    target = _as_tensor(target)
    if target.dtype.kind != "f":
        raise TypeError(f"{op}: target must be floating-point, got dtype {target.dtype}")
    if target.shape != input.shape:
        raise ValueError(f"{op}: target of shape {target.shape} must have the same shape as input {input.shape}")
    return target


_LOG_FLOOR = -100.0  # PyTorch clamps BCE's logs here, so that x = 0 or 1 gives a finite loss


class BinaryCrossEntropy(Function):
    """y = -w · (t · max(log x, -100) + (1 - t) · max(log(1 - x), -100)), then reduced;
    dL/dx = s · w · (x - t) / max(x · (1 - x), 1e-12),
    dL/dt = s · w · (max(log(1 - x), -100) - max(log x, -100)),
    s = g (none, sum) or g / numel (mean). (PyTorch's target gradient leaves the logs
    unclamped, so it is ±inf where x is 0 or 1; elsewhere the two agree.)"""

    @staticmethod
    def forward(ctx, x, target, weight=None, *, reduction="mean"):
        t = target.astype(x.dtype, copy=False)
        with np.errstate(divide="ignore"):
            log_x = np.maximum(np.log(x), _LOG_FLOOR)
            log_1mx = np.maximum(np.log1p(-x), _LOG_FLOOR)
        loss = -(t * log_x + (1 - t) * log_1mx)
        if weight is not None:
            weight = weight.astype(x.dtype, copy=False)
            loss *= weight
        ctx.reduction, ctx.count = reduction, x.size
        keep_logs = ctx.needs_input_grad[1]
        ctx.save_for_backward(x, t, weight, log_x if keep_logs else None, log_1mx if keep_logs else None)
        return _reduce(loss, reduction, x.size)

    @staticmethod
    def backward(ctx, grad):
        x, t, weight, log_x, log_1mx = ctx.saved
        scale = _grad_scale(grad, ctx.reduction, ctx.count, x.dtype)
        if weight is not None:
            scale = scale * weight
        dx = dt = None
        if ctx.needs_input_grad[0]:
            dx = scale * (x - t) / np.maximum(x * (1 - x), 1e-12)
        if ctx.needs_input_grad[1]:
            dt = scale * (log_1mx - log_x)
        return (dx, dt, *(None,) * (len(ctx.needs_input_grad) - 2))


def binary_cross_entropy(
    input: Tensor, target, weight: Tensor | None = None, size_average=None, reduce=None, reduction: str = "mean"
) -> Tensor:
    """Binary cross-entropy between probabilities input (in [0, 1]) and target, each log
    clamped at -100 (as torch.nn.functional.binary_cross_entropy). `weight` rescales each
    element and broadcasts to input's shape. Prefer binary_cross_entropy_with_logits on logits."""
    op = "binary_cross_entropy"
    _check_input(op, input)
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction(op, reduction)
    target = _pointwise_target(op, input, target)
    x = input.data
    if x.size and bool(((x < 0) | (x > 1)).any()):
        raise ValueError(
            f"{op}: every element of input must be a probability in [0, 1] (apply sigmoid first, "
            "or use binary_cross_entropy_with_logits on logits)"
        )
    weight = _constant(op, "weight", weight)
    if weight is not None:
        try:
            broadcast = np.broadcast_shapes(weight.shape, input.shape)
        except ValueError:
            broadcast = None
        if broadcast != input.shape:
            raise ValueError(
                f"{op}: weight of shape {weight.shape} does not broadcast to the input's shape {input.shape}"
            )
    tensors = (input, target) if weight is None else (input, target, weight)
    return BinaryCrossEntropy.apply(*tensors, reduction=reduction)


class L1(Function):
    """y = |x - t|, then reduced;  dL/dx = s · sign(x - t) (0 where x = t),  dL/dt = -dL/dx,
    s = g (none, sum) or g / numel (mean)."""

    @staticmethod
    def forward(ctx, x, target, *, reduction="mean"):
        diff = x - target.astype(x.dtype, copy=False)
        ctx.reduction, ctx.count = reduction, x.size
        ctx.save_for_backward(np.sign(diff))
        return _reduce(np.abs(diff), reduction, x.size)

    @staticmethod
    def backward(ctx, grad):
        (sign,) = ctx.saved
        dx = _grad_scale(grad, ctx.reduction, ctx.count, sign.dtype) * sign
        return (dx if ctx.needs_input_grad[0] else None, -dx if ctx.needs_input_grad[1] else None)


def l1_loss(input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """Absolute differences |input - target|, reduced (as torch.nn.functional.l1_loss)."""
    op = "l1_loss"
    _check_input(op, input)
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction(op, reduction)
    return L1.apply(input, _pointwise_target(op, input, target), reduction=reduction)


class SmoothL1(Function):
    """y = 0.5 · d² / β where |d| < β, else |d| - 0.5 · β, with d = x - t (β = 0: |d|), then reduced;
    dL/dx = s · (d / β where |d| < β, else sign(d)),  dL/dt = -dL/dx,
    s = g (none, sum) or g / numel (mean)."""

    @staticmethod
    def forward(ctx, x, target, *, reduction="mean", beta=1.0):
        diff = x - target.astype(x.dtype, copy=False)
        magnitude = np.abs(diff)
        if beta == 0:
            loss, slope = magnitude, np.sign(diff)
        else:
            quadratic = magnitude < beta
            loss = np.where(quadratic, (0.5 / beta) * diff * diff, magnitude - 0.5 * beta)
            slope = np.where(quadratic, diff / beta, np.sign(diff))
        ctx.reduction, ctx.count = reduction, x.size
        ctx.save_for_backward(slope)
        return _reduce(loss, reduction, x.size)

    @staticmethod
    def backward(ctx, grad):
        (slope,) = ctx.saved
        dx = _grad_scale(grad, ctx.reduction, ctx.count, slope.dtype) * slope
        return (dx if ctx.needs_input_grad[0] else None, -dx if ctx.needs_input_grad[1] else None)


def smooth_l1_loss(
    input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0
) -> Tensor:
    """Squared below beta, absolute above it: 0.5 · d² / beta where |d| < beta, else |d| - beta / 2,
    d = input - target (as torch.nn.functional.smooth_l1_loss; beta = 0 is l1_loss)."""
    op = "smooth_l1_loss"
    _check_input(op, input)
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction(op, reduction)
    if beta < 0:
        raise ValueError(f"{op}: beta must be >= 0, got {beta}")
    return SmoothL1.apply(input, _pointwise_target(op, input, target), reduction=reduction, beta=float(beta))


class KLDiv(Function):
    """y = t · (log t - x) (0 where t = 0), or with log_target y = exp(t) · (t - x), then reduced;
    dL/dx = -s · t (log_target: -s · exp(t)),
    dL/dt = s · (log t + 1 - x) (log_target: s · exp(t) · (t - x + 1)),
    s = g (none, sum), g / numel (mean) or g / N (batchmean, N = the size of dim 0).
    (At t = 0 the target gradient is -inf here and nan in PyTorch.)"""

    @staticmethod
    def forward(ctx, x, target, *, reduction="mean", log_target=False):
        t = target.astype(x.dtype, copy=False)
        if log_target:
            prob = np.exp(t)
            loss = prob * (t - x)
        else:
            prob = t
            with np.errstate(divide="ignore", invalid="ignore"):
                entropy_term = np.where(t > 0, t * np.log(t), 0).astype(x.dtype, copy=False)
            loss = entropy_term - t * x
        mode, normaliser = _kl_normaliser(reduction, x)
        ctx.mode, ctx.normaliser = mode, normaliser
        ctx.save_for_backward(x, t, prob)
        return _reduce(loss, mode, normaliser)

    @staticmethod
    def backward(ctx, grad):
        x, t, prob = ctx.saved
        scale = _grad_scale(grad, ctx.mode, ctx.normaliser, x.dtype)
        dx = -scale * prob if ctx.needs_input_grad[0] else None
        dt = None
        if ctx.needs_input_grad[1]:
            if ctx.attrs.get("log_target"):
                dt = scale * prob * (t - x + 1)
            else:
                with np.errstate(divide="ignore"):
                    dt = scale * (np.log(t) + 1 - x)
        return dx, dt


def _kl_normaliser(reduction: str, x) -> tuple[str, int | None]:
    """(the reduction _reduce runs, its divisor): batchmean is a mean over dim 0's size."""
    if reduction == "batchmean":
        return ("mean", x.shape[0]) if x.ndim else ("sum", None)
    return reduction, x.size if reduction == "mean" else None


def kl_div(
    input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False
) -> Tensor:
    """Kullback-Leibler divergence KL(target || exp(input)) pointwise, input holding
    log-probabilities and target probabilities (log-probabilities with log_target), reduced
    (as torch.nn.functional.kl_div). reduction="batchmean" divides the sum by the batch size
    and gives the true KL divergence; "mean" divides by the number of elements, as PyTorch."""
    op = "kl_div"
    _check_input(op, input)
    reduction = legacy_reduction(size_average, reduce, reduction)
    if reduction not in REDUCTIONS + ("batchmean",):
        raise ValueError(f"{op}: reduction must be one of 'none', 'mean', 'batchmean' or 'sum', got {reduction!r}")
    target = _pointwise_target(op, input, target)
    return KLDiv.apply(input, target, reduction=reduction, log_target=bool(log_target))
