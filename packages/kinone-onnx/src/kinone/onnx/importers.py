"""The registry in reverse: one small function per ONNX operator, computing it with Kinone ops.

    @importer("Relu")
    def relu(node, x):
        return x.relu()

An importer takes the node (`node.attrs`: its attributes as Python values, `node.op_type`,
`node.name`) and its inputs, and returns the output. Inputs are Tensors, or None for an
omitted optional input. Shape-like inputs (Reshape's shape, Slice's starts, reduction axes)
are read with `ints(t)`: the interpreter computes them from constants or from shapes, never
from anything trainable. The operators covered are those `export` writes, so any model it
exports loads back (opset 13 and later).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kinone.autograd import Tensor, cat, maximum, minimum, where
from kinone.nn import functional as F
from onnx import helper

IMPORTERS: dict[str, Callable] = {}


def importer(*op_types: str):
    def register(fn):
        for op_type in op_types:
            IMPORTERS[op_type] = fn
        return fn

    return register


def ints(t) -> list[int]:
    """A shape-like input as Python ints."""
    return [int(v) for v in np.asarray(t.data if isinstance(t, Tensor) else t).reshape(-1)]


def _axes(node, axes_input, ndim: int):
    """Reduction/squeeze axes: the input (opset 13/18 and on) or the attribute; None for all."""
    axes = ints(axes_input) if axes_input is not None else node.attrs.get("axes")
    if axes is None or len(axes) == 0:
        return None
    return tuple(sorted(a % ndim for a in axes))


# ------------------------------------------------------------------ elementwise
_BINARY = {
    "Add": lambda a, b: a + b,
    "Sub": lambda a, b: a - b,
    "Mul": lambda a, b: a * b,
    "Div": lambda a, b: a / b,
    "Pow": lambda a, b: a**b,
    "Max": maximum,
    "Min": minimum,
}


@importer(*_BINARY)
def binary(node, a, b):
    return _BINARY[node.op_type](a, b)


_UNARY = {
    "Neg": Tensor.__neg__,
    "Exp": Tensor.exp,
    "Log": Tensor.log,
    "Sqrt": Tensor.sqrt,
    "Tanh": Tensor.tanh,
    "Sigmoid": Tensor.sigmoid,
    "Relu": Tensor.relu,
    "Abs": Tensor.abs,
    "Identity": lambda x: x,
}


@importer(*_UNARY)
def unary(node, x):
    return _UNARY[node.op_type](x)


@importer("Erf")
def erf(node, x):
    return F.erf(x)


@importer("Gelu")
def gelu(node, x):
    if node.attrs.get("approximate", "none") != "none":
        raise ValueError(f"kinone.onnx.load: node {node.name!r}: only Gelu(approximate='none') has a Kinone form")
    return F.gelu(x)


@importer("Where")
def where_(node, cond, a, b):
    return where(Tensor(np.asarray(cond.data, dtype=bool)), a, b)


@importer("Clip")
def clip(node, x, low=None, high=None):
    return x.clamp(None if low is None else float(low.data), None if high is None else float(high.data))


@importer("Cast")
def cast(node, x):
    return x.to(helper.tensor_dtype_to_np_dtype(node.attrs["to"]))


@importer("MatMul")
def matmul(node, a, b):
    return a @ b


@importer("Gemm")
def gemm(node, a, b, c=None):
    """alpha · A' · B' + beta · C, A' and B' transposed as the attributes say; a linear layer
    (transB=1, alpha = beta = 1, a bias vector) is one `F.linear`."""
    trans_a, trans_b = node.attrs.get("transA", 0), node.attrs.get("transB", 0)
    alpha, beta = node.attrs.get("alpha", 1.0), node.attrs.get("beta", 1.0)
    if trans_b and not trans_a and alpha == beta == 1.0 and (c is None or c.ndim == 1):
        return F.linear(a, b, c)
    out = (a.T if trans_a else a) @ (b.T if trans_b else b)
    out = out * alpha if alpha != 1.0 else out
    return out if c is None else out + (c * beta if beta != 1.0 else c)


@importer("Dropout")
def dropout(node, x, ratio=None, training_mode=None, *, training=False):
    """The identity in eval mode; in a loaded model being fine-tuned, dropout with the ratio."""
    p = float(ratio.data) if ratio is not None else node.attrs.get("ratio", 0.5)
    return F.dropout(x, p, training=training)


# ------------------------------------------------------------------ shapes
@importer("Reshape")
def reshape(node, x, shape):
    target = ints(shape)
    if not node.attrs.get("allowzero", 0):
        target = [x.shape[i] if d == 0 else d for i, d in enumerate(target)]
    return x.reshape(*target)


@importer("Flatten")
def flatten(node, x):
    axis = node.attrs.get("axis", 1) % max(x.ndim, 1)
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


@importer("Transpose")
def transpose(node, x):
    return x.permute(*node.attrs.get("perm", list(reversed(range(x.ndim)))))


@importer("Expand")
def expand(node, x, shape):
    return x.expand(*np.broadcast_shapes(x.shape, tuple(ints(shape))))


@importer("Concat")
def concat(node, *xs):
    return cat(list(xs), dim=node.attrs["axis"])


@importer("Unsqueeze")
def unsqueeze(node, x, axes=None):
    axes = ints(axes) if axes is not None else node.attrs["axes"]
    ndim = x.ndim + len(axes)
    shape = list(x.shape)
    for a in sorted(a % ndim for a in axes):
        shape.insert(a, 1)
    return x.reshape(*shape)


@importer("Squeeze")
def squeeze(node, x, axes=None):
    axes = _axes(node, axes, x.ndim)
    return x.reshape(*[d for i, d in enumerate(x.shape) if not (d == 1 and (axes is None or i in axes))])


@importer("Slice")
def slice_(node, x, starts, ends, axes=None, steps=None):
    starts, ends = ints(starts), ints(ends)
    axes = ints(axes) if axes is not None else list(range(len(starts)))
    steps = ints(steps) if steps is not None else [1] * len(starts)
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        # ONNX clamps out-of-range ends; "before the first element" is any end < -size.
        index[axis % x.ndim] = slice(start, None if step < 0 and end < -x.shape[axis] else end, step)
    return x[tuple(index)]


@importer("Size")
def size(node, x):
    return Tensor(np.asarray(int(np.prod(x.shape)), dtype=np.int64))


# ------------------------------------------------------------------ reductions
_REDUCE = {
    "ReduceSum": Tensor.sum,
    "ReduceMean": Tensor.mean,
    "ReduceMax": Tensor.amax,
    "ReduceMin": Tensor.amin,
    "ReduceLogSumExp": Tensor.logsumexp,
}


@importer(*_REDUCE)
def reduce(node, x, axes=None):
    dims = _axes(node, axes, x.ndim)
    keepdim = bool(node.attrs.get("keepdims", 1))
    if dims is None and node.attrs.get("noop_with_empty_axes", 0):
        return x
    return _REDUCE[node.op_type](x, dim=dims if dims is not None else tuple(range(x.ndim)), keepdim=keepdim)


@importer("Softmax", "LogSoftmax")
def softmax(node, x):
    axis = node.attrs.get("axis", -1)
    return x.softmax(axis) if node.op_type == "Softmax" else x.log_softmax(axis)


# ------------------------------------------------------------------ layers
def _symmetric_pads(node) -> tuple[int, int]:
    if node.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise ValueError(
            f"kinone.onnx.load: node {node.name!r}: auto_pad={node.attrs['auto_pad']!r} is not supported; give pads"
        )
    pads = node.attrs.get("pads", [0, 0, 0, 0])
    if len(pads) != 4 or pads[0] != pads[2] or pads[1] != pads[3]:
        raise ValueError(f"kinone.onnx.load: node {node.name!r}: only symmetric 2-D pads are supported, got {pads}")
    return pads[0], pads[1]


@importer("Conv")
def conv(node, x, weight, bias=None):
    return F.conv2d(
        x,
        weight,
        bias,
        stride=tuple(node.attrs.get("strides", (1, 1))),
        padding=_symmetric_pads(node),
        dilation=tuple(node.attrs.get("dilations", (1, 1))),
        groups=node.attrs.get("group", 1),
    )


@importer("BatchNormalization")
def batch_norm(node, x, scale, bias, mean, var, *, training=False):
    """Training mode (a loaded model being fine-tuned) uses batch statistics, as the original did."""
    return F.batch_norm(
        x,
        mean,
        var,
        scale,
        bias,
        training=training,
        momentum=1 - node.attrs.get("momentum", 0.9),
        eps=node.attrs.get("epsilon", 1e-5),
    )


@importer("MaxPool")
def max_pool(node, x):
    return F.max_pool2d(
        x,
        tuple(node.attrs["kernel_shape"]),
        tuple(node.attrs.get("strides", (1, 1))),
        _symmetric_pads(node),
        ceil_mode=bool(node.attrs.get("ceil_mode", 0)),
        dilation=tuple(node.attrs.get("dilations", (1, 1))),
    )


@importer("AveragePool")
def average_pool(node, x):
    return F.avg_pool2d(
        x,
        tuple(node.attrs["kernel_shape"]),
        tuple(node.attrs.get("strides", (1, 1))),
        _symmetric_pads(node),
        ceil_mode=bool(node.attrs.get("ceil_mode", 0)),
        count_include_pad=bool(node.attrs.get("count_include_pad", 0)),
    )


@importer("GlobalAveragePool")
def global_average_pool(node, x):
    return F.adaptive_avg_pool2d(x, 1)
