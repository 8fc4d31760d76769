"""Stage ``load_task``: the task's splits, subsampled for smoke runs and cleaned."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from gelora.config.build import build
from gelora.data.cleaning import clean_task
from gelora.data.task_data import TaskData
from gelora.errors import ConfigError
from gelora.kinds import TaskKind, kind_of
from gelora.training.metrics import rows_needed

log = logging.getLogger(__name__)


def load_task(task_cfg: DictConfig) -> TaskData:
    """The task's splits, shrunk by ``max_train_samples``, ``max_eval_samples`` (validation, and
    extra test sets) and ``max_test_samples`` (test; the validation cap unless set), then cleaned
    (``gelora.data.cleaning``).

    The caps draw their rows with ``task.split_seed``, never the training seed: every seed and
    every method of a sweep trains on the same rows and is scored on the same rows, so seeds vary
    training only (and the ID sample, drawn from the training rows, is shared). Classification
    rows are drawn stratified by label, extractive QA's by question, instruction examples plainly.

    Raises:
        ConfigError: the loader failed, a metric of ``task.metrics`` does not fit the task, or a
            split is empty after cleaning.
    """
    task: TaskData = build(task_cfg.loader, "task.loader")
    kind = kind_of(task.problem)
    try:
        kind.check_metrics(list(task_cfg.metrics), task.num_labels)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    eval_cap, seed = task_cfg.max_eval_samples, task_cfg.split_seed
    subsampled = TaskData(
        name=task.name,
        train=_capped(kind, task.train, task_cfg.max_train_samples, seed=seed),
        validation=_capped(kind, task.validation, eval_cap, seed=seed),
        test=_capped(kind, task.test, task_cfg.get("max_test_samples", eval_cap), seed=seed),
        label_names=task.label_names,
        notes=task.notes,
        problem=task.problem,
        extra_tests={
            name: _capped(kind, split, eval_cap, seed=seed)
            for name, split in task.extra_tests.items()
        },
    )
    cleaned = clean_task(subsampled)
    _check_scored_rows(cleaned, list(task_cfg.metrics))
    names = cleaned.label_names or []  # index=class: the head's outputs, results.json's labels
    labels = ["labels " + ", ".join(f"{i}={n}" for i, n in enumerate(names))] if names else []
    log.info("task %s: %s; %s", cleaned.name, cleaned.sizes(), "; ".join(labels + cleaned.notes))
    return cleaned


def _check_scored_rows(task: TaskData, metrics: list[str]) -> None:
    """Every split that is scored holds enough rows for the task's metrics (a correlation is
    not defined on one row: it would end a trained run with a NaN score)."""
    needed, metric = rows_needed(metrics)
    for name, size in task.sizes().items():
        if name != "train" and size < needed:
            key = "task.max_test_samples" if name == "test" else "task.max_eval_samples"
            raise ConfigError(
                f"task {task.name}: the {name} split has {size} row(s); {metric} needs at least "
                f"{needed} (raise {key})"
            )


def _capped(kind: TaskKind, split, max_samples: int | None, *, seed: int):
    """At most ``max_samples`` rows of ``split``, drawn with ``seed`` (all if there are fewer),
    as the task kind draws them (``TaskKind.subsample``)."""
    return kind.subsample(split, max_samples, seed=seed)
