"""`verify`: run an exported file in onnxruntime and the model in Kinone on the same inputs.

    report = verify(model, "model.onnx", example_input)       # raises VerificationError if off
    print(report)   # "max |onnxruntime - kinone| 3.1e-07 over batch sizes [2, 3] ..."

When the file has dynamic dims, inputs of another size (one sample more in the batch, and
with a dynamic image size half as large again, drawn with the input's mean and spread) are
checked as well, so a shape frozen at the example's size cannot pass unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kinone.autograd import Tensor, no_grad

from .export import draw_like, eval_mode, on_cpu


class VerificationError(AssertionError):
    """onnxruntime and Kinone disagree beyond the tolerance (the message has the numbers)."""


@dataclass
class VerifyReport:
    """The largest differences found, over every checked input and output."""

    max_abs_diff: float = 0.0
    max_rel_diff: float = 0.0
    batch_sizes: list = field(default_factory=list)
    input_shapes: list = field(default_factory=list)  # the first input's shape in each run
    runs: list = field(default_factory=list)  # per run: {"batch_size", "max_abs_diff" per output}
    float32_rounding: list = field(default_factory=list)  # outputs past the tolerance by float32 rounding only

    def __str__(self) -> str:
        text = (
            f"max |onnxruntime - kinone| {self.max_abs_diff:.3g} (relative {self.max_rel_diff:.3g}) "
            f"over batch sizes {self.batch_sizes}"
        )
        if self.float32_rounding:
            text += (
                f"; past the tolerance only by float32 rounding ({'; '.join(self.float32_rounding)}), "
                "onnxruntime no further from Kinone in float64 than Kinone's own float32"
            )
        return text


def _runtime():
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("kinone.onnx.verify needs onnxruntime: pip install 'kinone-onnx[runtime]'") from None
    return onnxruntime


def _as_runs(inputs) -> list[tuple[np.ndarray, ...]]:
    """One batch (an array/Tensor, or a tuple of them for several model inputs) or a list of batches."""

    def one(batch):
        parts = batch if isinstance(batch, tuple) else (batch,)
        return tuple(p.numpy() if isinstance(p, Tensor) else np.asarray(p) for p in parts)

    if isinstance(inputs, list):
        return [one(b) for b in inputs]
    return [one(inputs)]


def _another_size(run: tuple[np.ndarray, ...], symbolic: list, seed: int = 0) -> tuple[np.ndarray, ...]:
    """The run at another size where the file's dims are symbolic (one sample more in the
    batch, half as large again elsewhere), drawn like the run's own values."""
    rng = np.random.default_rng(seed)
    out = []
    for x, dims in zip(run, symbolic):
        shape = tuple(
            (size + 1 if axis == 0 else size + size // 2 + 1) if dyn else size
            for axis, (size, dyn) in enumerate(zip(x.shape, dims))
        )
        out.append(draw_like(x, shape, rng))
    return tuple(out)


def verify(
    model, path, inputs, rtol: float = 1e-4, atol: float = 1e-5, accept_float32_rounding: bool = False
) -> VerifyReport:
    """Compare onnxruntime (CPU) on the file at `path` with `model` (eval mode, no graph) on
    `inputs` and, for a file with dynamic dims, on inputs of another size. Raises
    `VerificationError` naming the input, output, element and values when some element has
    |ort - kinone| > atol + rtol·|kinone|; returns the report otherwise.

    With `accept_float32_rounding`, an output past the tolerance still passes when Kinone run
    in float64 shows it is rounding: onnxruntime's float32 result is at most 4 times as far
    from the float64 one as Kinone's float32 result is (`report.float32_rounding` names it).
    A deep network in float32 needs this: two correct implementations of ResNet-18 differ by
    ~1e-4, which no fixed tolerance tells from a small export bug."""
    ort = _runtime()
    session = ort.InferenceSession(str(Path(path)), providers=["CPUExecutionProvider"])
    input_names = [i.name for i in session.get_inputs()]
    runs = _as_runs(inputs)
    symbolic = [[not isinstance(d, int) for d in i.shape] for i in session.get_inputs()]
    if any(any(dims) for dims in symbolic):  # a graph for any batch (or image) size: try another
        runs.append(_another_size(runs[0], symbolic))
    report = VerifyReport()
    with on_cpu(model), eval_mode(model):
        for r, run in enumerate(runs):
            if len(run) != len(input_names):
                raise ValueError(
                    f"kinone.onnx.verify: {path} takes {len(input_names)} inputs {input_names}, got {len(run)}"
                )
            with no_grad():
                expected = model(*[Tensor(x) for x in run])
            expected = [t.data for t in (expected if isinstance(expected, (tuple, list)) else (expected,))]
            actual = session.run(None, dict(zip(input_names, run)))
            batch = run[0].shape[0]
            report.batch_sizes.append(batch)
            report.input_shapes.append(tuple(run[0].shape))
            diffs = []
            for o, (want, got) in enumerate(zip(expected, actual)):
                try:
                    diffs.append(
                        _compare(want, got, rtol, atol, f"{path}: input batch {r} (batch size {batch}), output {o}")
                    )
                except VerificationError as error:
                    errors = _float64_errors(model, run, o, want, got)
                    if not (accept_float32_rounding and errors and _is_rounding(*errors)):
                        raise VerificationError(f"{error}{_float64_diagnosis(errors)}") from None
                    diffs.append(_differences(want, got))
                    report.float32_rounding.append(
                        f"batch {r} output {o}: onnxruntime off by {errors[0]:.3g}, Kinone by {errors[1]:.3g}"
                    )
                report.max_abs_diff = max(report.max_abs_diff, diffs[-1][0])
                report.max_rel_diff = max(report.max_rel_diff, diffs[-1][1])
            report.runs.append({"batch_size": batch, "max_abs_diff": [d[0] for d in diffs]})
    return report


def _float64_outputs(model, run) -> list | None:
    """The model's outputs with every floating parameter, buffer and input in float64 (the
    arrays are put back exactly as they were after), or None for a model that is not a Module."""
    if not (hasattr(model, "parameters") and hasattr(model, "buffers") and hasattr(model, "to")):
        return None
    saved = [(t, t.data, t.grad) for t in [*model.parameters(), *model.buffers()]]
    try:
        model.to(np.float64)
        with no_grad():
            outputs = model(*[Tensor(x.astype(np.float64) if x.dtype.kind == "f" else x) for x in run])
    finally:
        for t, data, grad in saved:
            t.data, t.grad = data, grad
    return [t.data for t in (outputs if isinstance(outputs, (tuple, list)) else (outputs,))]


def _float64_errors(model, run, output: int, want: np.ndarray, got: np.ndarray) -> tuple[float, float] | None:
    """How far onnxruntime's and Kinone's float32 results are from Kinone in float64 (max |diff|),
    or None where the model does not run in float64."""
    try:
        truth = _float64_outputs(model, run)
    except (TypeError, ValueError):  # a model that does not run in float64
        truth = None
    if truth is None or truth[output].shape != want.shape or not truth[output].size:
        return None
    exact = truth[output].astype(np.float64)
    return float(np.nanmax(np.abs(got - exact))), float(np.nanmax(np.abs(want - exact)))


def _is_rounding(ort_error: float, kinone_error: float) -> bool:
    return ort_error <= 4 * kinone_error


def _float64_diagnosis(errors: tuple[float, float] | None) -> str:
    """Whether a difference is float32 rounding: both results against Kinone in float64."""
    if errors is None:
        return ""
    ort_error, kinone_error = errors
    verdict = (
        " The two float32 results are about as far from the float64 one as from each other: this is float32 "
        "rounding (deep or ill-conditioned networks), not the export; pass a larger atol to accept it."
        if _is_rounding(ort_error, kinone_error)
        else " onnxruntime is much further from it than Kinone's float32: the export is likely wrong."
    )
    return (
        f". Against Kinone in float64: onnxruntime is off by up to {ort_error:.3g}, Kinone's float32 by "
        f"up to {kinone_error:.3g}.{verdict}"
    )


def _differences(want: np.ndarray, got: np.ndarray) -> tuple[float, float]:
    """max |got - want| and max |got - want| / |want|."""
    want64, got64 = want.astype(np.float64), got.astype(np.float64)
    if want64.size == 0:
        return 0.0, 0.0
    diff = np.abs(got64 - want64)
    return float(np.nanmax(diff)), float(np.nanmax(diff / np.maximum(np.abs(want64), np.finfo(np.float64).tiny)))


def _compare(want: np.ndarray, got: np.ndarray, rtol: float, atol: float, what: str) -> tuple[float, float]:
    if want.shape != got.shape:
        raise VerificationError(f"kinone.onnx.verify: {what}: onnxruntime gave shape {got.shape}, Kinone {want.shape}")
    want64, got64 = want.astype(np.float64), got.astype(np.float64)
    diff = np.abs(got64 - want64)
    if diff.size == 0:
        return 0.0, 0.0
    excess = diff - (atol + rtol * np.abs(want64))
    worst = np.unravel_index(np.nanargmax(np.where(np.isnan(excess), np.inf, excess)), diff.shape)
    max_abs, max_rel = _differences(want, got)
    if not np.all(excess <= 0):
        raise VerificationError(
            f"kinone.onnx.verify: {what}: element {tuple(int(i) for i in worst)} is {float(got64[worst]):.8g} in "
            f"onnxruntime but {float(want64[worst]):.8g} in Kinone (|diff| {diff[worst]:.3g} > atol {atol} + rtol {rtol} * |kinone|); "
            f"max |diff| {max_abs:.3g}"
        )
    return max_abs, max_rel
