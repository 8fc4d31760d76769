"""Your own data: ``task=from_files`` reads a training file and, optionally, validation and test.

Files are CSV, TSV, JSON lines or Parquet with one or two text columns (``task.text_fields``)
and a label column (``task.label_field``). For ``problem: classification`` labels are names (or
numbers) mapped to class indices, in ``task.label_names`` order when given, else sorted; a label
in the validation or test file that training never saw is an error, not a silent new class. For
``problem: regression`` labels are numbers. A split without a file is carved, seeded and
stratified, from the training file, and the run's notes say so. For ``problem: extractive_qa``
the files are SQuAD-format JSON instead (``gelora.data.squad.load_squad_files``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gelora.data.tables import read_table, require_columns
from gelora.data.task_data import (
    PROBLEMS,
    Split,
    TaskData,
    stratified_split,
    stratified_three_way_split,
)


def _label_key(value: Any) -> str:
    """Labels compared as text, so that ``1`` in JSON and ``"1"`` in CSV are the same class."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _sort_labels(keys: set[str]) -> list[str]:
    """Numeric labels in numeric order (2 before 10), others alphabetically."""
    try:
        return sorted(keys, key=float)
    except ValueError:
        return sorted(keys)


def _read_rows(
    path: str | Path, text_fields: list[str], label_field: str
) -> tuple[list[list[str]], list[Any]]:
    rows = read_table(path)
    require_columns(rows, [*text_fields, label_field], path)
    columns: list[list[str]] = [[] for _ in text_fields]
    labels = []
    for number, row in enumerate(rows, start=1):
        for field, column in zip(text_fields, columns, strict=True):
            value = row.get(field)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                raise ValueError(f"{path}, row {number}: no value in column {field!r}")
            column.append(str(value))
        label = row.get(label_field)
        if label is None or _label_key(label) == "":
            raise ValueError(f"{path}, row {number}: no label in column {label_field!r}")
        labels.append(label)
    return columns, labels


def _regression_targets(labels: list[Any], path: str | Path) -> list[float]:
    targets = []
    for number, label in enumerate(labels, start=1):
        try:
            target = float(label)
        except (TypeError, ValueError):
            raise ValueError(
                f"{path}, row {number}: label {label!r} is not a number (task.problem=regression)"
            ) from None
        if not math.isfinite(target):
            raise ValueError(f"{path}, row {number}: label {label!r} is not finite")
        targets.append(target)
    return targets


def _class_indices(labels: list[Any], label_names: list[str], path: str | Path) -> list[int]:
    index = {name: i for i, name in enumerate(label_names)}
    indices = []
    for number, label in enumerate(labels, start=1):
        key = _label_key(label)
        if key not in index:
            raise ValueError(
                f"{path}, row {number}: unknown label {key!r}; known labels: "
                f"{', '.join(label_names)} (set task.label_names to list every class)"
            )
        indices.append(index[key])
    return indices


def load_from_files(
    *,
    train_file: str | None = None,
    validation_file: str | None = None,
    test_file: str | None = None,
    text_fields: str | Sequence[str] = ("text",),
    label_field: str = "label",
    problem: str = "classification",
    label_names: Sequence[Any] | None = None,
    name: str = "from_files",
    split_seed: int = 0,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> TaskData:
    """Splits from the given files; missing validation/test splits carved from the train file."""
    if train_file is None:
        raise ValueError("task.train_file is required: add task.train_file=<path> to the command")
    if problem == "extractive_qa":
        from gelora.data.squad import load_squad_files

        return load_squad_files(
            train_file,
            validation_file,
            test_file,
            name=name,
            split_seed=split_seed,
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
        )
    fields = [text_fields] if isinstance(text_fields, str) else list(text_fields)
    if len(fields) not in (1, 2):
        raise ValueError(f"task.text_fields must name one or two columns, got {fields}")
    if problem not in PROBLEMS:
        raise ValueError(f"task.problem must be one of {', '.join(PROBLEMS)}, got {problem!r}")
    if problem == "regression" and label_names is not None:
        raise ValueError("task.label_names is for classification; set it to null for regression")
    files = {"train": train_file, "validation": validation_file, "test": test_file}
    raw = {
        split: _read_rows(path, fields, label_field)
        for split, path in files.items()
        if path is not None
    }
    if problem == "classification":
        if label_names is None:
            names = _sort_labels({_label_key(y) for y in raw["train"][1]})
        else:
            names = [_label_key(y) for y in label_names]
        if len(names) < 2:
            raise ValueError(f"{train_file}: classification needs 2 or more labels, found {names}")
    else:
        names = None

    def to_split(split: str) -> Split:
        columns, labels = raw[split]
        path = files[split]
        targets = (
            _regression_targets(labels, path)
            if names is None
            else _class_indices(labels, names, path)
        )
        return Split(columns[0], targets, text_pairs=columns[1] if len(columns) == 2 else None)

    splits = {split: to_split(split) for split in raw}
    notes = [f"{split}: {path}" for split, path in files.items() if path is not None]
    seed_note = f"split_seed={split_seed}"
    if validation_file is None and test_file is None:
        splits["train"], splits["validation"], splits["test"] = stratified_three_way_split(
            splits["train"],
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            seed=split_seed,
        )
        notes.append(
            f"no validation_file or test_file: validation and test are seeded "
            f"{validation_fraction:.0%} and {test_fraction:.0%} parts of {train_file} ({seed_note})"
        )
    elif test_file is None:
        splits["train"], splits["test"] = stratified_split(
            splits["train"], test_fraction, seed=split_seed
        )
        notes.append(
            f"no test_file: test is a seeded {test_fraction:.0%} part of {train_file} ({seed_note})"
        )
    elif validation_file is None:
        splits["train"], splits["validation"] = stratified_split(
            splits["train"], validation_fraction, seed=split_seed
        )
        notes.append(
            f"no validation_file: validation is a seeded {validation_fraction:.0%} part of "
            f"{train_file} ({seed_note})"
        )
    return TaskData(
        name=name,
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        label_names=names,
        problem=problem,
        notes=notes,
    )
