"""Task metrics by name (torchmetrics), so a task config can say ``metrics: [accuracy, macro_f1]``.

The names are the ones the GLUE and topic-classification literature reports. Every metric here
is higher-is-better, so the first one of a task can be the monitored (checkpoint) metric;
instruction tuning's ``response_loss`` and ``perplexity`` (``gelora.training.instruct_metrics``)
are lower-is-better, and their kind says so (``TaskKind.metric_mode``: the checkpoint's and
early stopping's ``mode``, and the direction written into results.json).
Classification metrics take predicted class indices, regression metrics the predicted value.
Extractive QA has its own two, SQuAD's ``exact_match`` and ``f1`` (``QA_METRICS``), computed
from decoded answer spans by ``gelora.training.qa_metrics``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torchmetrics import Metric, MetricCollection, PearsonCorrCoef, SpearmanCorrCoef
from torchmetrics.classification import (
    BinaryF1Score,
    MulticlassAccuracy,
    MulticlassF1Score,
    MulticlassMatthewsCorrCoef,
)

from gelora.training.instruct_metrics import INSTRUCTION_METRICS
from gelora.training.qa_metrics import QA_METRICS


@dataclass(frozen=True)
class MetricSpec:
    problem: str  # "classification" or "regression"
    build: Callable[[int], Metric]  # num_labels -> metric
    binary_only: bool = False
    min_rows: int = 1  # rows a split needs for the metric to be defined (a correlation: 2)


METRICS: dict[str, MetricSpec] = {
    "accuracy": MetricSpec(
        "classification", lambda n: MulticlassAccuracy(num_classes=n, average="micro")
    ),
    "macro_f1": MetricSpec(
        "classification", lambda n: MulticlassF1Score(num_classes=n, average="macro")
    ),
    # F1 of the positive class (label 1), as GLUE reports it for MRPC and QQP.
    "f1": MetricSpec("classification", lambda n: BinaryF1Score(), binary_only=True),
    "matthews": MetricSpec("classification", lambda n: MulticlassMatthewsCorrCoef(num_classes=n)),
    "pearson": MetricSpec("regression", lambda n: PearsonCorrCoef(), min_rows=2),
    "spearman": MetricSpec("regression", lambda n: SpearmanCorrCoef(), min_rows=2),
}


def check_metrics(names: list[str], problem: str, num_labels: int) -> None:
    """Raise ``ValueError`` naming the metric that does not fit the task."""
    if not names:
        raise ValueError("task.metrics is empty; name at least one metric")
    if problem == "instruction" or any(name in INSTRUCTION_METRICS for name in names):
        for name in names:
            if problem != "instruction" or name not in INSTRUCTION_METRICS:
                raise ValueError(
                    f"task.metrics: {name!r} does not fit a {problem} task; instruction tuning "
                    f"takes {', '.join(INSTRUCTION_METRICS)}"
                )
        return
    if problem == "extractive_qa":
        for name in names:
            if name not in QA_METRICS:
                raise ValueError(
                    f"task.metrics: {name!r} does not fit extractive QA; known: "
                    f"{', '.join(QA_METRICS)}"
                )
        return
    for name in names:
        if name not in METRICS and name in QA_METRICS:
            raise ValueError(f"task.metrics: {name!r} is a QA metric, task is {problem}")
        if name not in METRICS:
            raise ValueError(f"task.metrics: {name!r} is unknown; known: {', '.join(METRICS)}")
        spec = METRICS[name]
        if spec.problem != problem:
            raise ValueError(
                f"task.metrics: {name!r} is a {spec.problem} metric, task is {problem}"
            )
        if spec.binary_only and num_labels != 2:
            raise ValueError(f"task.metrics: {name!r} needs 2 classes, task has {num_labels}")


_KIND_METRICS: dict[str, tuple[str, ...]] = {}  # a task kind's own metrics (TaskKind.metrics)


def register_kind_metrics(kind: str, names: Sequence[str]) -> None:
    """Metric names a task kind computes itself (``gelora.kinds.register_kind``): the config
    check accepts them beside the built-in ones."""
    _KIND_METRICS[kind] = tuple(names)


def known_metric_names() -> list[str]:
    """Every metric name a task config may list: the built-in ones (classification and
    regression, SQuAD's, instruction tuning's), then those of the registered kinds."""
    kinds = [name for names in _KIND_METRICS.values() for name in names]
    return list(dict.fromkeys([*METRICS, *QA_METRICS, *INSTRUCTION_METRICS, *kinds]))


def rows_needed(names: list[str]) -> tuple[int, str | None]:
    """The fewest rows a scored split needs for every metric of ``names`` to be defined, and
    the metric that needs them (``None`` when one row will do)."""
    needs = {name: METRICS[name].min_rows for name in names if name in METRICS}
    metric = max(needs, key=needs.__getitem__, default=None)  # the first of the most needed
    return (1, None) if metric is None or needs[metric] == 1 else (needs[metric], metric)


def build_metrics(names: list[str], problem: str, num_labels: int) -> MetricCollection:
    """The task's metrics as one collection; ``compute()`` returns ``{name: value}``."""
    check_metrics(names, problem, num_labels)
    return MetricCollection({name: METRICS[name].build(num_labels) for name in names})
