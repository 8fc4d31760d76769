"""Task metrics by name (torchmetrics), so a task config can say ``metric: accuracy``."""

from __future__ import annotations

from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

METRICS = {
    "accuracy": lambda num_labels: MulticlassAccuracy(num_classes=num_labels, average="micro"),
    "macro_f1": lambda num_labels: MulticlassF1Score(num_classes=num_labels, average="macro"),
}


def build_metric(name: str, num_labels: int) -> Metric:
    if name not in METRICS:
        raise ValueError(f"task.metric={name!r} is unknown; known metrics: {', '.join(METRICS)}")
    return METRICS[name](num_labels)
