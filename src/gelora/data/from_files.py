"""Your own data: the built-in kinds' readers of ``task=from_files`` (a training file and,
optionally, validation and test).

``gelora.kinds.from_files.load_from_files`` looks ``task.problem``'s kind up and hands its
``read_files`` a ``FileRequest``; the readers here are classification's
(``read_classification``), regression's (``read_regression``) and instruction's
(``read_instruction``); extractive QA's reads SQuAD JSON (``gelora.data.squad``).

Files are CSV, TSV, JSON lines, JSON or Parquet (``gelora.data.tables`` reads them, or refuses
them in one line naming the file and the line) with one or two text columns
(``task.text_fields``) and a label column (``task.label_field``). For ``problem:
classification`` labels are class names mapped to class indices, in ``task.label_names`` order
when given, else sorted (numbers in numeric order, else alphabetically); a label in the
validation or test file that training never saw is an error, not a silent new class. For
``problem: regression`` labels are numbers. A split without a file is carved, seeded and
stratified, from the training file, and the run's notes say so. For ``problem: extractive_qa``
the files are SQuAD-format JSON instead (``gelora.data.squad.load_squad_files``); for
``problem: instruction`` they hold Alpaca rows: columns ``instruction``, ``input`` (optional)
and ``output`` (``gelora.data.instruction_split``), and a repeated prompt keeps its first row.

The label rule (``label_key``, the one function every split, every file and
``task.label_names`` go through): a label names its class by

- a number (JSON or Parquet number, or text that is a decimal numeral such as ``1``, ``1.0``,
  `` 1 ``, ``01``, ``1e0``, ``+1``): the class is the number, written shortest (``1``, ``0.5``),
  so ``1``, ``1.0``, ``"1"`` and ``" 1.0 "`` are one class. Only decimal numerals count:
  ``nan``, ``inf``, ``1_000`` and ``0x1`` are text. A non-finite JSON/Parquet number is an error;
- a boolean (JSON ``true``/``false``, Parquet bool): the class ``true`` or ``false``, the
  spelling JSON uses, so a CSV's ``true`` is the same class (a CSV's ``True`` is not);
- text: the text with surrounding blanks stripped, case kept (``Pos`` and ``pos`` differ);
- anything else (a JSON list or object, bytes, a date) is an error naming the file and row.

A missing label (an empty cell, ``null``, a Parquet NaN) is an error naming the file and row.
Text columns must hold text (or numbers, read as written); a JSON list or object is an error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from gelora.data.instruction_split import InstructionSplit, held_out, without_repeated_prompts
from gelora.data.tables import read_table, require_columns
from gelora.data.task_data import (
    Split,
    TaskData,
    stratified_split,
    stratified_three_way_split,
)

NUMERAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
ALPACA_COLUMNS = ("instruction", "input", "output")


@dataclass(frozen=True)
class FileRequest:
    """What ``task=from_files`` hands a task kind's reader (``TaskKind.read_files``).

    Attributes:
        files: ``train``, ``validation`` and ``test`` to their paths (``None``: no file, carve
            the split from the training file).
        text_fields: ``task.text_fields``, always a list.
        label_field: ``task.label_field``.
        label_names: ``task.label_names`` (``None``: not given).
        name: ``task.name``.
        split_seed: ``task.split_seed``, the seed of every carved split.
        validation_fraction: the share of the training file a carved validation split takes.
        test_fraction: the same for test.
    """

    files: dict[str, str | None]
    text_fields: list[str]
    label_field: str
    label_names: Sequence[Any] | None
    name: str
    split_seed: int
    validation_fraction: float
    test_fraction: float

    @property
    def carving(self) -> dict[str, Any]:
        """``name``, ``split_seed``, ``validation_fraction``, ``test_fraction`` as keywords."""
        return {
            "name": self.name,
            "split_seed": self.split_seed,
            "validation_fraction": self.validation_fraction,
            "test_fraction": self.test_fraction,
        }


def _number_key(number: Decimal) -> str:
    """A number written shortest and exactly: ``1`` for 1.0, ``0.5`` for 0.50, ``0`` for -0
    (no rounding, so numbers that differ in their 30th digit stay apart)."""
    sign, digits, exponent = number.as_tuple()
    text = "".join(map(str, digits)).lstrip("0")
    if not text:
        return "0"
    stripped = text.rstrip("0")
    exponent += len(text) - len(stripped)  # 1200 = 12e2
    sign_text = "-" if sign else ""
    if exponent > 30 or exponent + len(stripped) < -30:  # 1e400: short, not 400 digits
        return f"{sign_text}{stripped}e{exponent}"
    if exponent >= 0:
        return sign_text + stripped + "0" * exponent
    whole, point = stripped[:exponent], stripped[exponent:]
    return f"{sign_text}{whole or '0'}.{point.rjust(-exponent, '0')}"


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a JSON list"
    if isinstance(value, dict):
        return "a JSON object"
    return f"a {type(value).__name__}"


def _is_missing(value: Any) -> bool:
    """``None``, a NaN (Parquet's and pandas' missing value) or pandas' ``NA``."""
    if value is None or type(value).__name__ == "NAType":
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def label_key(value: Any, path: str | Path, row: int) -> str:
    """The class that label ``value`` (row ``row`` of ``path``) names: the module's label rule.

    Raises:
        ValueError: the label is a list, an object, a non-finite number or another non-label,
            naming ``path`` and ``row``.
    """
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return _number_key(Decimal(int(value)))
    if isinstance(value, float | np.floating):
        if not math.isfinite(value):
            raise ValueError(f"{path}, row {row}: label {value!r} is not a finite number")
        return _number_key(Decimal(repr(float(value))))
    if isinstance(value, str):
        text = value.strip()
        return _number_key(Decimal(text)) if NUMERAL.fullmatch(text) else text
    raise ValueError(
        f"{path}, row {row}: label {value!r} is {_kind(value)}, not a class name or number"
    )


def _sort_labels(keys: set[str]) -> list[str]:
    """Numeric labels in numeric order (2 before 10), others alphabetically."""
    if all(NUMERAL.fullmatch(key) for key in keys):
        return sorted(keys, key=Decimal)
    return sorted(keys)


def _text_value(value: Any, field: str, path: str | Path, row: int) -> str:
    if _is_missing(value):
        raise ValueError(f"{path}, row {row}: no value in column {field!r}")
    if isinstance(value, list | dict):
        raise ValueError(
            f"{path}, row {row}: the value in column {field!r} is {_kind(value)}, not text"
        )
    return str(value)


def _read_rows(
    path: str | Path, text_fields: list[str], label_field: str
) -> tuple[list[list[str]], list[Any]]:
    rows = read_table(path)
    require_columns(rows, [*text_fields, label_field], path)
    columns: list[list[str]] = [[] for _ in text_fields]
    labels = []
    for number, row in enumerate(rows, start=1):
        for field, column in zip(text_fields, columns, strict=True):
            column.append(_text_value(row.get(field), field, path, number))
        label = row.get(label_field)
        if _is_missing(label) or (isinstance(label, str) and not label.strip()):
            raise ValueError(f"{path}, row {number}: no label in column {label_field!r}")
        labels.append(label)
    return columns, labels


def _regression_targets(labels: list[Any], path: str | Path) -> list[float]:
    targets = []
    for number, label in enumerate(labels, start=1):
        try:
            if isinstance(label, bool | np.bool_):
                raise TypeError
            target = float(label)
        except (TypeError, ValueError):
            raise ValueError(
                f"{path}, row {number}: label {label!r} is not a number (task.problem=regression)"
            ) from None
        if not math.isfinite(target):
            raise ValueError(f"{path}, row {number}: label {label!r} is not finite")
        targets.append(target)
    return targets


def _class_indices(keys: list[str], label_names: list[str], path: str | Path) -> list[int]:
    index = {name: i for i, name in enumerate(label_names)}
    indices = []
    for number, key in enumerate(keys, start=1):
        if key not in index:
            raise ValueError(
                f"{path}, row {number}: unknown label {key!r}; known labels: "
                f"{', '.join(label_names)} (set task.label_names to list every class)"
            )
        indices.append(index[key])
    return indices


def _given_label_names(label_names: Sequence[Any]) -> list[str]:
    names: list[str] = []
    for number, value in enumerate(label_names, start=1):
        name = label_key(value, "task.label_names", number)
        if name in names:
            raise ValueError(
                f"task.label_names lists {name!r} twice (labels that denote the same number "
                "are one class)"
            )
        names.append(name)
    return names


def _instruction_rows(path: str | Path) -> tuple[InstructionSplit, str | None]:
    """The Alpaca rows of ``path``, a repeated prompt's first only, and a note if any dropped."""
    rows = read_table(path)
    require_columns(rows, ["instruction", "output"], path)
    columns: dict[str, list[str]] = {name: [] for name in ALPACA_COLUMNS}
    for number, row in enumerate(rows, start=1):
        for name, column in columns.items():
            value = row.get(name)
            column.append(
                ""
                if name == "input" and _is_missing(value)
                else _text_value(value, name, path, number)
            )
    read = InstructionSplit(columns["instruction"], columns["input"], columns["output"])
    kept = without_repeated_prompts(read)
    dropped = len(read) - len(kept)
    note = (
        f"{path}: dropped {dropped} rows whose prompt repeats an earlier one" if dropped else None
    )
    return kept, note


def _carving_notes(
    files: dict[str, str | None], validation_fraction: float, test_fraction: float, seed: int
) -> list[str]:
    """What was carved from the training file, for the run's notes."""
    train_file, seed_note = files["train"], f"split_seed={seed}"
    if files["validation"] is None and files["test"] is None:
        return [
            f"no validation_file or test_file: validation and test are seeded "
            f"{validation_fraction:.0%} and {test_fraction:.0%} parts of {train_file} ({seed_note})"
        ]
    if files["test"] is None:
        return [
            f"no test_file: test is a seeded {test_fraction:.0%} part of {train_file} ({seed_note})"
        ]
    if files["validation"] is None:
        return [
            f"no validation_file: validation is a seeded {validation_fraction:.0%} part of "
            f"{train_file} ({seed_note})"
        ]
    return []


def read_instruction(request: FileRequest) -> TaskData:
    """``problem: instruction``: Alpaca rows from the files; a split without a file is a seeded
    part of the training rows."""
    _no_label_names(request, "instruction")
    if request.text_fields != ["text"] or request.label_field != "label":
        raise ValueError(
            "task.problem=instruction reads Alpaca columns instruction, input (optional) and "
            "output; task.text_fields and task.label_field do not apply: leave them unset"
        )
    files, seed = request.files, request.split_seed
    splits: dict[str, InstructionSplit] = {}
    notes = [f"{split}: {path}" for split, path in files.items() if path is not None]
    for split, path in files.items():
        if path is not None:
            splits[split], note = _instruction_rows(path)
            notes += [note] if note else []
    carve_both = files["validation"] is None and files["test"] is None
    validation_fraction, test_fraction = request.validation_fraction, request.test_fraction
    if files["test"] is None:
        splits["train"], splits["test"] = held_out(splits["train"], test_fraction, seed=seed)
    if files["validation"] is None:
        share = validation_fraction / (1 - test_fraction) if carve_both else validation_fraction
        splits["train"], splits["validation"] = held_out(splits["train"], share, seed=seed)
    notes += _carving_notes(files, validation_fraction, test_fraction, seed)
    return TaskData(
        name=request.name,
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        label_names=None,
        problem="instruction",
        notes=notes,
    )


def _no_label_names(request: FileRequest, problem: str) -> None:
    """Refuse ``task.label_names`` for a kind whose tasks do not name their classes."""
    if request.label_names is not None:
        raise ValueError(f"task.label_names is for classification; set it to null for {problem}")


def text_columns(request: FileRequest) -> list[str]:
    """``task.text_fields``: one text column, or two for pairs, else one line naming the key."""
    if len(request.text_fields) not in (1, 2):
        raise ValueError(
            f"task.text_fields must name one or two columns, got {request.text_fields}"
        )
    return request.text_fields


MIN_ROWS_FOR_ID_CHECK = 20  # below this, a class per two rows can be a real (tiny) data set


def _class_names(
    raw: dict[str, tuple[list[list[str]], list[Any]]],
    files: dict[str, str | None],
    label_names: Sequence[Any] | None,
) -> tuple[list[str], dict[str, list[str]]]:
    """The classes (given, or the training labels sorted) and each split's label keys."""
    keys = {
        split: [label_key(y, files[split], row) for row, y in enumerate(labels, start=1)]
        for split, (_, labels) in raw.items()
    }
    names = (
        _sort_labels(set(keys["train"])) if label_names is None else _given_label_names(label_names)
    )
    rows = len(keys["train"])
    if label_names is None and rows >= MIN_ROWS_FOR_ID_CHECK and len(names) > rows // 2:
        raise ValueError(
            f"{files['train']}: the label column has {len(names)} different values in {rows} "
            "rows, more than one class per two rows: an id or text column, not a label? Name the "
            "label column with task.label_field, or list the classes in task.label_names if "
            "they are really this many"
        )
    if len(names) < 2:
        raise ValueError(f"{files['train']}: classification needs 2 or more labels, found {names}")
    return names, keys


def _labelled_split(columns: list[list[str]], targets: list[int] | list[float]) -> Split:
    return Split(columns[0], targets, text_pairs=columns[1] if len(columns) == 2 else None)


def _carve_labelled(
    splits: dict[str, Split],
    files: dict[str, str | None],
    *,
    split_seed: int,
    validation_fraction: float,
    test_fraction: float,
) -> None:
    """Fill in, seeded and stratified from the training rows, the splits without a file."""
    if files["validation"] is None and files["test"] is None:
        splits["train"], splits["validation"], splits["test"] = stratified_three_way_split(
            splits["train"],
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            seed=split_seed,
        )
    elif files["test"] is None:
        splits["train"], splits["test"] = stratified_split(
            splits["train"], test_fraction, seed=split_seed
        )
    elif files["validation"] is None:
        splits["train"], splits["validation"] = stratified_split(
            splits["train"], validation_fraction, seed=split_seed
        )


def _labelled_data(
    request: FileRequest, splits: dict[str, Split], names: list[str] | None, problem: str
) -> TaskData:
    """The labelled splits read, the missing ones carved from the training rows."""
    files = request.files
    notes = [f"{split}: {path}" for split, path in files.items() if path is not None]
    _carve_labelled(
        splits,
        files,
        split_seed=request.split_seed,
        validation_fraction=request.validation_fraction,
        test_fraction=request.test_fraction,
    )
    notes += _carving_notes(
        files, request.validation_fraction, request.test_fraction, request.split_seed
    )
    return TaskData(
        name=request.name,
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        label_names=names,
        problem=problem,
        notes=notes,
    )


def read_labelled_rows(request: FileRequest) -> dict[str, tuple[list[list[str]], list[Any]]]:
    """Each split's text columns and raw labels, for the splits that have a file."""
    fields = text_columns(request)
    return {
        split: _read_rows(path, fields, request.label_field)
        for split, path in request.files.items()
        if path is not None
    }


def read_classification(request: FileRequest) -> TaskData:
    """``problem: classification``: class names (the module's label rule) mapped to indices,
    in ``task.label_names`` order when given, else sorted; missing splits carved, stratified."""
    raw = read_labelled_rows(request)
    names, keys = _class_names(raw, request.files, request.label_names)
    splits = {
        split: _labelled_split(columns, _class_indices(keys[split], names, request.files[split]))
        for split, (columns, _) in raw.items()
    }
    return _labelled_data(request, splits, names, "classification")


def read_regression(request: FileRequest) -> TaskData:
    """``problem: regression``: one finite number per row; missing splits carved."""
    _no_label_names(request, "regression")
    raw = read_labelled_rows(request)
    splits = {
        split: _labelled_split(columns, _regression_targets(labels, request.files[split]))
        for split, (columns, labels) in raw.items()
    }
    return _labelled_data(request, splits, None, "regression")
