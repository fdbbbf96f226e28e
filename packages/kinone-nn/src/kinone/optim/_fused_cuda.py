"""Fused CuPy kernels for the SGD and Adam updates: one kernel launch per parameter.

Not run in CI (it has no GPU, and the stand-in device runs the neutral NumPy-ufunc path of
`sgd.py` and `adam.py`); checked on a GPU by benchmarks/gpu/run.sh.

Why: on CuPy a tiny kernel launch costs 13-16 us, and the neutral path launches 6-14 of them
per parameter (each `out=` ufunc is one), so for ResNet-18's 62 parameters an Adam step is
launch-bound. Here each parameter's whole update is one elementwise kernel.

The kernels do the neutral path's operations in the same order, each rounded to the
parameter's dtype (scalars are cast to it first, as NumPy casts a Python float meeting a
float32 array), and are compiled with `--fmad=false` so that no multiply-add is contracted:
the weights then match the CPU's float32 steps (sqrt and division are IEEE-rounded in NVRTC
by default, as in NumPy).
"""

from __future__ import annotations

import functools

import numpy as np

from kinone.autograd import backend

_OPTIONS = ("--fmad=false",)

# NumPy's maximum propagates NaN; CUDA's fmax does not.
_PREAMBLE = """
template <typename T> __device__ T nan_maximum(T a, T b) {
    return (a != a || b != b) ? a + b : (a > b ? a : b);
}
"""


def applies(param) -> bool:
    """True for an array of real CuPy (not NumPy's, not the stand-in's)."""
    return type(param) is not np.ndarray and backend.is_cuda_array(param) and type(param).__module__.startswith("cupy")


@functools.cache
def _sgd_kernel():
    import cupy

    return cupy.ElementwiseKernel(
        "T grad, T lr, T momentum, T one_minus_dampening, T weight_decay, "
        "bool nesterov, bool maximize, bool first, bool use_momentum, bool damped",
        "T param, T buffer",
        """
        T direction = grad;
        if (weight_decay != (T)0) {
            direction = param * weight_decay;
            direction = maximize ? direction - grad : direction + grad;
        } else if (maximize) {
            direction = -grad;
        }
        if (use_momentum) {
            if (first) {
                buffer = direction;
            } else {
                buffer = buffer * momentum;
                buffer = buffer + (damped ? direction * one_minus_dampening : direction);
            }
            direction = nesterov ? buffer * momentum + direction : buffer;
        }
        param = param - direction * lr;
        """,
        "kinone_sgd_update",
        options=_OPTIONS,
    )


def sgd_update(param, grad, buffer, *, lr, momentum, dampening, weight_decay, nesterov, maximize, first) -> None:
    """One SGD update of `param` (and of `buffer`, its momentum buffer, when momentum != 0), in place.
    `first`: the buffer is seeded with the direction (it was just allocated)."""
    cast = param.dtype.type
    use_momentum = momentum != 0
    _sgd_kernel()(
        grad,
        cast(lr),
        cast(momentum),
        cast(1 - dampening),
        cast(weight_decay),
        bool(nesterov),
        bool(maximize),
        bool(first),
        use_momentum,
        dampening != 0,
        param,
        buffer if use_momentum else param,  # a dummy output when there is no buffer
    )


@functools.cache
def _adam_kernel():
    import cupy

    return cupy.ElementwiseKernel(
        "T grad, T decay_factor, T weight_decay, T moment_weight, T one_minus_beta2, T beta2, "
        "T bias_correction2_sqrt, T eps, T step_size, "
        "bool decoupled, bool coupled, bool maximize, bool weight_below_half, bool amsgrad",
        "T param, T exp_avg, T exp_avg_sq, T max_exp_avg_sq",
        """
        if (decoupled) param = param * decay_factor;
        T g = grad;
        if (coupled) {
            g = param * weight_decay;
            g = maximize ? g - grad : g + grad;
        } else if (maximize) {
            g = -grad;
        }
        T work = g - exp_avg;
        if (weight_below_half) {
            exp_avg = exp_avg + work * moment_weight;
        } else {
            exp_avg = g - work * moment_weight;
        }
        work = g * g;
        work = work * one_minus_beta2;
        exp_avg_sq = exp_avg_sq * beta2;
        exp_avg_sq = exp_avg_sq + work;
        T second_moment = exp_avg_sq;
        if (amsgrad) {
            max_exp_avg_sq = nan_maximum(max_exp_avg_sq, exp_avg_sq);
            second_moment = max_exp_avg_sq;
        }
        T denom = sqrt(second_moment);
        denom = denom / bias_correction2_sqrt;
        denom = denom + eps;
        work = exp_avg / denom;
        work = work * step_size;
        param = param - work;
        """,
        "kinone_adam_update",
        preamble=_PREAMBLE,
        options=_OPTIONS,
    )


def adam_update(
    param,
    grad,
    exp_avg,
    exp_avg_sq,
    max_exp_avg_sq,
    *,
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    decoupled,
    maximize,
    step_size,
    bias_correction2_sqrt,
) -> None:
    """One Adam/AdamW update of `param` and its moments, in place (`max_exp_avg_sq` None
    without amsgrad). The scalars are those the neutral path computes in Python."""
    cast = param.dtype.type
    weight = 1 - beta1
    below_half = weight < 0.5
    amsgrad = max_exp_avg_sq is not None
    _adam_kernel()(
        grad,
        cast(1 - lr * weight_decay),
        cast(weight_decay),
        cast(weight if below_half else 1 - weight),
        cast(1 - beta2),
        cast(beta2),
        cast(bias_correction2_sqrt),
        cast(eps),
        cast(step_size),
        decoupled and weight_decay != 0,
        not decoupled and weight_decay != 0,
        bool(maximize),
        below_half,
        amsgrad,
        param,
        exp_avg,
        exp_avg_sq,
        max_exp_avg_sq if amsgrad else exp_avg_sq,  # a dummy when not amsgrad
    )
