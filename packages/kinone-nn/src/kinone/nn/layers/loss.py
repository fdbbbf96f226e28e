"""Loss layers: thin Modules over kinone.nn.functional's losses."""

from __future__ import annotations

from kinone.autograd import Tensor

from .. import functional as F
from ..functional.loss import legacy_reduction
from ..module import Module


class CrossEntropyLoss(Module):
    """Cross-entropy of logits (N, C[, ...]) against integer class targets, with optional class
    weights, label smoothing and ignore_index."""

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__()
        self.register_buffer("weight", None if weight is None else Tensor(weight))
        self.ignore_index, self.reduction, self.label_smoothing = ignore_index, reduction, label_smoothing

    def forward(self, logits, target):
        return F.cross_entropy(
            logits,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class NLLLoss(Module):
    """Negative log-likelihood of log-probabilities against integer class targets."""

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__()
        self.register_buffer("weight", None if weight is None else Tensor(weight))
        self.ignore_index, self.reduction = ignore_index, reduction

    def forward(self, log_probs, target):
        return F.nll_loss(
            log_probs, target, weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction
        )


class BCEWithLogitsLoss(Module):
    """Binary cross-entropy on logits (multi-label), with optional weight and pos_weight."""

    def __init__(self, weight=None, reduction: str = "mean", pos_weight=None):
        super().__init__()
        self.register_buffer("weight", None if weight is None else Tensor(weight))
        self.register_buffer("pos_weight", None if pos_weight is None else Tensor(pos_weight))
        self.reduction = reduction

    def forward(self, logits, target):
        return F.binary_cross_entropy_with_logits(
            logits, target, weight=self.weight, pos_weight=self.pos_weight, reduction=self.reduction
        )


class MSELoss(Module):
    """Mean squared error."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class _PointwiseLoss(Module):
    """Shared by the elementwise losses: PyTorch's deprecated size_average / reduce flags,
    when given, set the reduction (as in torch)."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        self.reduction = legacy_reduction(size_average, reduce, reduction)


class BCELoss(_PointwiseLoss):
    """Binary cross-entropy of probabilities (after a sigmoid) against targets, each log clamped
    at -100; `weight` rescales each element."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", None if weight is None else Tensor(weight))

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class L1Loss(_PointwiseLoss):
    """Mean absolute error."""

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_PointwiseLoss):
    """Squared error below beta, absolute error above (Huber loss divided by beta)."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class KLDivLoss(_PointwiseLoss):
    """Kullback-Leibler divergence of log-probabilities input from target (probabilities, or
    log-probabilities with log_target); reduction="batchmean" gives the true KL divergence."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False):
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)
