"""kinone.train: the training loop, its run log, checkpoints and metrics."""

from .checkpoint import (
    capture_rng_state,
    load_checkpoint,
    load_training_state,
    read_checkpoint_progress,
    read_rng_state,
    restore_rng_state,
    save_checkpoint,
)
from .metrics import accuracy, mean_auroc, per_class_auroc, roc_auc
from .run_log import MetricsReader, RunWriter, apply_resumes, read_metrics, read_run
from .trainer import Trainer, TrainingInterrupted

__all__ = [
    "MetricsReader",
    "RunWriter",
    "Trainer",
    "TrainingInterrupted",
    "accuracy",
    "apply_resumes",
    "capture_rng_state",
    "load_checkpoint",
    "load_training_state",
    "mean_auroc",
    "per_class_auroc",
    "read_checkpoint_progress",
    "read_metrics",
    "read_rng_state",
    "read_run",
    "restore_rng_state",
    "roc_auc",
    "save_checkpoint",
]
