"""Training: the Lightning module and task metrics."""

from gelora.training.module import LoRAClassifierModule

__all__ = ["LoRAClassifierModule"]
