"""Datasets: NIH ChestX-ray14 (`NIHChestXray`) and its synthetic sample (`make_sample`)."""

from .nih import FINDINGS, NIHChestXray
from .nih_sample import make_sample

__all__ = ["FINDINGS", "NIHChestXray", "make_sample"]
