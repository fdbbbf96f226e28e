"""Checks for Function authors: the same op on two devices gives the same numbers.

`device_parity(fn, arrays)` runs `fn` on CPU tensors and on tensors on another device made
from the same arrays, then compares the outputs and the gradients of every input that
requires grad (for a fixed random weighting of the outputs). Without a GPU, run it inside
`backend.use_standin_cuda()`: the stand-in device fails on every array that crossed devices
by mistake (a constant built with `np.zeros` inside a CUDA op, say).
"""

from __future__ import annotations

import numpy as np

from . import backend
from .tensor import Tensor


def _outputs(result) -> list:
    if isinstance(result, Tensor):
        return [result]
    if isinstance(result, (tuple, list)):
        return [r for item in result for r in _outputs(item)]
    return []


def _run(fn, arrays, device):
    tensors = []
    for array in arrays:
        if isinstance(array, np.ndarray):
            t = Tensor(backend.to_device(np.array(array, copy=True), backend.Device(device)))
            t.requires_grad = array.dtype.kind == "f"
            tensors.append(t)
        else:
            tensors.append(array)
    outputs = _outputs(fn(*tensors))
    if not outputs:
        raise TypeError(f"device_parity: {getattr(fn, '__name__', fn)} returned no tensor")
    rng = np.random.default_rng(0)
    loss = None
    for out in outputs:
        if out.device != backend.Device(device):
            raise AssertionError(f"device_parity: an output is on {out.device}, expected {device}")
        if out.requires_grad:
            weight = Tensor(backend.to_device(rng.standard_normal(out.shape).astype(out.dtype), backend.Device(device)))
            term = (out * weight).sum()
            loss = term if loss is None else loss + term
    if loss is not None:
        loss.backward()
    grads = [t.grad.numpy() if isinstance(t, Tensor) and t.grad is not None else None for t in tensors]
    return [o.numpy() for o in outputs], grads


def device_parity(fn, arrays, device="cuda", rtol: float = 1e-6, atol: float = 1e-9) -> None:
    """Assert that `fn` gives the same outputs and input gradients on the CPU and on `device`."""
    cpu_out, cpu_grads = _run(fn, arrays, "cpu")
    dev_out, dev_grads = _run(fn, arrays, device)
    for i, (a, b) in enumerate(zip(cpu_out, dev_out)):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=atol, err_msg=f"output {i} differs on {device}")
    for i, (a, b) in enumerate(zip(cpu_grads, dev_grads)):
        if (a is None) != (b is None):
            raise AssertionError(f"input {i}: a gradient on one device only ({'cpu' if b is None else device})")
        if a is not None:
            np.testing.assert_allclose(b, a, rtol=rtol, atol=atol, err_msg=f"gradient of input {i} differs on {device}")
