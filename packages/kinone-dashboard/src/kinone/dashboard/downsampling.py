"""Downsampling series for plotting: at most `MAX_POINTS` points that keep a curve's shape."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .logs import RunLog

# Points per plotted series (min/max per bucket keeps spikes visible).
MAX_POINTS = 2000


def downsample_indices(y, max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most `max_points` points of series `y` that keep its shape: the series is cut
    into buckets, and each bucket keeps its minimum and maximum (so spikes stay visible); the
    first and last points are always kept. NaNs count as neither minimum nor maximum."""
    y = np.asarray(y, dtype=float)
    n = len(y)
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, (max_points - 2) // 2)
    size = math.ceil(n / buckets)
    buckets = math.ceil(n / size)
    pad = buckets * size - n
    nan = np.isnan(y)
    low = np.concatenate([np.where(nan, np.inf, y), np.full(pad, np.inf)]).reshape(buckets, size)
    high = np.concatenate([np.where(nan, -np.inf, y), np.full(pad, -np.inf)]).reshape(buckets, size)
    base = np.arange(buckets) * size
    idx = np.concatenate([base + low.argmin(axis=1), base + high.argmax(axis=1), [0, n - 1]])
    return np.unique(idx[idx < n])


def downsample(frame: pd.DataFrame, y: str, max_points: int = MAX_POINTS) -> pd.DataFrame:
    """Rows of `frame` chosen by `downsample_indices` on column `y`."""
    if len(frame) <= max_points:
        return frame
    return frame.iloc[downsample_indices(pd.to_numeric(frame[y], errors="coerce").to_numpy(dtype=float), max_points)]


def stride_indices(n: int, max_points: int = MAX_POINTS) -> np.ndarray:
    """At most `max_points` evenly spaced indices of 0..n-1, the last one included."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))


def series(log: RunLog, split: str, column: str, max_points: int = MAX_POINTS, smooth: int = 0) -> pd.DataFrame:
    """`step` and `column` of one split, numeric, without missing values, downsampled; with
    `smooth` > 1 a rolling mean over that many records is taken first."""
    frame = log.frame(split)
    if frame.empty or column not in frame or "step" not in frame:
        return pd.DataFrame(columns=["step", column])
    out = pd.DataFrame(
        {"step": pd.to_numeric(frame["step"], errors="coerce"), column: pd.to_numeric(frame[column], errors="coerce")}
    ).dropna()
    if smooth > 1:
        out[column] = out[column].rolling(smooth, min_periods=1).mean()
    return downsample(out.reset_index(drop=True), column, max_points)
