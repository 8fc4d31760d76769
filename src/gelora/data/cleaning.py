"""Rows a model cannot learn from, dropped and counted before any split is used.

Empty or blank texts (or pairs), and regression rows without a finite target, are dropped; the
task's notes say how many, so ``results.json`` records it. A split left empty is an error.
"""

from __future__ import annotations

import math

from gelora.data.task_data import Split, TaskData
from gelora.errors import ConfigError


def _clean_split(split: Split, name: str, task: TaskData) -> tuple[Split, list[str]]:
    """Drop rows whose text (or pair) is empty or blank, and regression rows without a finite
    target, counting both; labels outside the task's label set are an error."""
    keep, notes = [], []
    blank = missing = 0
    pairs = split.text_pairs
    for i, text in enumerate(split.texts):
        label = split.labels[i]
        empty_response = task.problem == "instruction" and not str(label).strip()
        if not str(text).strip() or (pairs is not None and not str(pairs[i]).strip()):
            blank += 1
            continue
        if empty_response:  # nothing to learn: every token of the row would be masked
            blank += 1
            continue
        if task.problem == "regression" and not math.isfinite(float(label)):
            missing += 1  # labels outside a classification task's set fail in TaskData already
            continue
        keep.append(i)
    if blank:
        notes.append(f"{name}: dropped {blank} rows with an empty text")
    if missing:
        notes.append(f"{name}: dropped {missing} rows with a missing or non-finite target")
    if not keep:
        raise ConfigError(f"task {task.name}: the {name} split is empty after cleaning")
    return (split if len(keep) == len(split.texts) else split.subset(keep)), notes


def clean_task(task: TaskData) -> TaskData:
    """``task`` with every split checked by ``_clean_split``; drops are added to its notes."""
    notes = list(task.notes)
    cleaned = {}
    for name in ("train", "validation", "test"):
        split = getattr(task, name)
        if len(split.texts) == 0:
            raise ConfigError(f"task {task.name}: the {name} split is empty")
        cleaned[name], dropped = _clean_split(split, name, task)
        notes += dropped
    extra = {}
    for name, split in task.extra_tests.items():
        extra[name], dropped = _clean_split(split, name, task)
        notes += dropped
    return TaskData(
        name=task.name,
        train=cleaned["train"],
        validation=cleaned["validation"],
        test=cleaned["test"],
        label_names=task.label_names,
        notes=notes,
        problem=task.problem,
        extra_tests=extra,
    )
