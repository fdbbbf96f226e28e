"""Views derived from a run's records: per-finding AUROC tables, the best validation record,
gradient norms per parameter and their health."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def finding_names(info: dict, n: int) -> list[str]:
    """Finding (class) names from run.json's config["findings"], else "class 0" ... "class n-1"."""
    config = info.get("config") if isinstance(info, dict) else None
    names = config.get("findings") if isinstance(config, dict) else None
    if isinstance(names, list) and len(names) == n:
        return [str(x) for x in names]
    return [f"class {i}" for i in range(n)]


def _number(value) -> float:
    """A float from a JSON or NumPy number; NaN for anything else (None, strings, booleans)."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
        return float(value)
    return math.nan


def best_index(val: pd.DataFrame, metric: str = "mean_auroc") -> int | None:
    """Row of the best validation record: highest `metric` (lowest when it is a loss)."""
    if val.empty or metric not in val:
        return None
    values = pd.to_numeric(val[metric], errors="coerce")
    if values.isna().all():
        return None
    return int(values.idxmin() if "loss" in metric else values.idxmax())


def auroc_table(
    val: pd.DataFrame, info: dict, test: pd.DataFrame | None = None, metric: str = "mean_auroc"
) -> pd.DataFrame:
    """Per-finding AUROC at the latest and the best validation epoch (and the test split when
    logged): one row per finding, one column per record, NaN where undefined."""
    columns: dict[str, list[float]] = {}
    lengths = []
    picks = []
    if not val.empty and "auroc" in val:
        latest = len(val) - 1
        picks.append((f"latest (epoch {_epoch(val, latest)}, step {_step(val, latest)})", val.iloc[latest]["auroc"]))
        best = best_index(val, metric)
        if best is not None:
            picks.append((f"best (epoch {_epoch(val, best)}, step {_step(val, best)})", val.iloc[best]["auroc"]))
    if test is not None and not test.empty and "auroc" in test:
        picks.append(("test", test.iloc[-1]["auroc"]))
    for label, values in picks:
        if isinstance(values, list):
            columns[label] = [_number(v) for v in values]
            lengths.append(len(values))
    if not columns:
        return pd.DataFrame()
    n = max(lengths)
    for label, values in columns.items():
        columns[label] = values + [math.nan] * (n - len(values))
    table = pd.DataFrame(columns, index=pd.Index(finding_names(info, n), name="finding"))
    return table


def _epoch(frame: pd.DataFrame, i: int):
    value = _number(frame.iloc[i].get("epoch"))
    return int(value) + 1 if math.isfinite(value) else "?"


def _step(frame: pd.DataFrame, i: int):
    value = _number(frame.iloc[i].get("step"))
    return int(value) if math.isfinite(value) else "?"


def grad_norm_frame(log_frame: pd.DataFrame) -> pd.DataFrame:
    """The grad_norm records as step x layer (float, NaN where missing), indexed by step."""
    if log_frame.empty or "step" not in log_frame:
        return pd.DataFrame()
    layers = [c for c in log_frame.columns if c not in ("step", "epoch", "time", "split")]
    frame = log_frame[layers].apply(pd.to_numeric, errors="coerce").astype(float)
    frame.index = pd.Index(log_frame["step"], name="step")
    return frame


def gradient_health(grads: pd.DataFrame, vanishing_below: float = 1e-7, exploding_above: float = 1e3) -> pd.DataFrame:
    """One row per layer: its latest, median and largest gradient norm and a flag: "exploding"
    (latest norm non-finite or above `exploding_above`), "vanishing" (latest below
    `vanishing_below`), else "ok"."""
    if grads.empty:
        return pd.DataFrame(columns=["layer", "latest", "median", "max", "flag"])
    latest = grads.ffill().iloc[-1]
    rows = []
    for layer in grads.columns:
        values = grads[layer].to_numpy(dtype=float)
        last = float(latest[layer])
        finite = values[np.isfinite(values)]
        if not math.isfinite(last) or last > exploding_above:
            flag = "exploding"
        elif last < vanishing_below:
            flag = "vanishing"
        else:
            flag = "ok"
        rows.append(
            {
                "layer": layer,
                "latest": last,
                "median": float(np.median(finite)) if finite.size else math.nan,
                "max": float(finite.max()) if finite.size else math.nan,
                "flag": flag,
            }
        )
    return pd.DataFrame(rows)
