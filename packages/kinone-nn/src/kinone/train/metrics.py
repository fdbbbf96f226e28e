"""Evaluation metrics on NumPy arrays: accuracy and ROC AUC (per class and mean).

ROC AUC is computed as the Mann-Whitney U statistic: the probability that a random positive
scores above a random negative, ties counting one half. With average ranks for tied scores,

    AUC = (Σ ranks of positives − P·(P+1)/2) / (P·N)

which equals scikit-learn's `roc_auc_score` (trapezoidal area under the ROC curve) exactly,
ties included. A class whose labels are all 0 or all 1 in the split has no ROC curve: its AUC
is NaN (scikit-learn raises), and the mean skips it.
"""

from __future__ import annotations

import numpy as np

from kinone.autograd import Tensor


def _numpy(x) -> np.ndarray:
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def accuracy(scores, targets) -> float:
    """Top-1 accuracy: `scores` (N, C) against integer `targets` (N,), or, for binary/multi-label
    `scores` of the same shape as 0/1 `targets`, the fraction of correct thresholded (> 0) logits."""
    scores, targets = _numpy(scores), _numpy(targets)
    if scores.ndim == targets.ndim + 1:
        return float(np.mean(scores.argmax(axis=-1) == targets))
    if scores.shape != targets.shape:
        raise ValueError(f"accuracy: scores of shape {scores.shape} do not fit targets of shape {targets.shape}")
    return float(np.mean((scores > 0) == (targets > 0.5)))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of `values`, ties sharing the average of their ranks (no Python loop)."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Start index of each run of equal values, and its length.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    lengths = np.diff(np.r_[starts, len(values)])
    run_ranks = starts + (lengths + 1) / 2.0  # average of the 1-based ranks start+1 .. start+length
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(run_ranks, lengths)
    return ranks


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve of binary `labels` (0/1) ranked by `scores`; NaN when only one
    label value is present."""
    labels, scores = _numpy(labels).astype(bool).ravel(), _numpy(scores).astype(np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"roc_auc: {labels.size} labels but {scores.size} scores")
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = _average_ranks(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def per_class_auroc(labels, scores) -> np.ndarray:
    """ROC AUC of each column of (N, C) multi-label `labels` against `scores`; NaN where a
    column has one label value only."""
    labels, scores = _numpy(labels), _numpy(scores)
    if labels.shape != scores.shape or labels.ndim != 2:
        raise ValueError(
            f"per_class_auroc: expected labels and scores of the same (N, C) shape, got {labels.shape} and {scores.shape}"
        )
    return np.array([roc_auc(labels[:, c], scores[:, c]) for c in range(labels.shape[1])])


def mean_auroc(labels, scores) -> float:
    """Mean of the per-class AUROCs over the classes where it is defined (NaN if none)."""
    values = per_class_auroc(labels, scores)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
