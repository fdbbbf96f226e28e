"""The tracing hook reports every Function.apply, whatever the grad mode."""

from __future__ import annotations

import numpy as np

from kinone.autograd import no_grad, register_apply_hook, tensor, trace
from kinone.autograd.ops.arithmetic import Add, Mul
from kinone.autograd.ops.reduction import Sum


def test_trace_records_function_inputs_output_and_attrs():
    x = tensor(np.ones((2, 3)), requires_grad=True)
    w = tensor(np.full((2, 3), 2.0))
    with trace() as records:
        y = (x * w + 1).sum(dim=1, keepdim=True)
    assert [r.function for r in records] == [Mul, Add, Sum]
    mul, add, total = records
    assert mul.inputs[0] is x and mul.inputs[1] is w
    assert add.inputs[0] is mul.output
    assert total.output is y and total.attrs == {"dim": 1, "keepdim": True}


def test_trace_works_under_no_grad_and_on_constants():
    x = tensor([1.0, 2.0])
    with no_grad(), trace() as records:
        x.exp()
    with trace() as more:
        x * 2  # nothing requires grad: still reported
    assert len(records) == 1 and len(more) == 1 and more[0].output.grad_fn is None


def test_hooks_are_removed_after_the_block_and_by_handle():
    with trace() as records:
        pass
    tensor([1.0]) * 2
    assert records == []
    seen = []
    handle = register_apply_hook(lambda r: seen.append(r.function.__name__))
    tensor([1.0]) + 1
    handle.remove()
    handle.remove()  # idempotent
    tensor([1.0]) + 1
    assert seen == ["Add"]
