"""GLUE (Wang et al., 2019) through Hugging Face ``datasets``, or from a local copy.

GLUE's test labels are hidden, so, as the LoRA/GeLoRA papers do, we report dev-set scores: the
official validation split is our test split (MNLI: ``validation_matched``, with
``validation_mismatched`` as a second test split) and a seeded, stratified part of train is our
validation split, used for checkpoint selection.

Without the hub, point ``task.data_dir`` at a folder holding ``train`` and ``validation`` files
(``validation_matched``/``validation_mismatched`` for MNLI) as ``.parquet``, ``.jsonl``,
``.json``, ``.csv`` or ``.tsv``, in the schema of the ``datasets`` GLUE configs: the task's text
columns (below), ``label`` (class index, or the score for STS-B) and, optionally, ``idx``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gelora.data.tables import TABLE_SUFFIXES, read_table, require_columns
from gelora.data.task_data import Split, TaskData, stratified_split

HUB_DATASET = "nyu-mll/glue"


@dataclass(frozen=True)
class GlueTask:
    """One GLUE config: its text columns, label names (``None``: regression) and dev splits."""

    text_fields: tuple[str, ...]
    label_names: list[str] | None
    test_split: str = "validation"
    extra_test_splits: dict[str, str] = field(default_factory=dict)  # our name -> GLUE split


GLUE_TASKS: dict[str, GlueTask] = {
    "cola": GlueTask(("sentence",), ["unacceptable", "acceptable"]),
    "sst2": GlueTask(("sentence",), ["negative", "positive"]),
    "mrpc": GlueTask(("sentence1", "sentence2"), ["not_equivalent", "equivalent"]),
    "qqp": GlueTask(("question1", "question2"), ["not_duplicate", "duplicate"]),
    "stsb": GlueTask(("sentence1", "sentence2"), None),
    "mnli": GlueTask(
        ("premise", "hypothesis"),
        ["entailment", "neutral", "contradiction"],
        test_split="validation_matched",
        extra_test_splits={"mismatched": "validation_mismatched"},
    ),
    "qnli": GlueTask(("question", "sentence"), ["entailment", "not_entailment"]),
    "rte": GlueTask(("sentence1", "sentence2"), ["entailment", "not_entailment"]),
}


class GlueUnavailable(FileNotFoundError):
    """Neither the hub nor a local copy could provide a GLUE task."""


def _local_rows(data_dir: Path, split: str) -> list[dict[str, Any]]:
    for suffix in TABLE_SUFFIXES:
        path = data_dir / f"{split}{suffix}"
        if path.is_file():
            return read_table(path)
    raise GlueUnavailable(
        f"task.data_dir={data_dir} has no {split} file: expected one of "
        f"{', '.join(split + s for s in TABLE_SUFFIXES)}"
    )


def _hub_rows(config: str, splits: list[str]) -> dict[str, list[dict[str, Any]]]:
    advice = (
        f"GLUE {config} needs the Hugging Face hub through `datasets` "
        "(pip install 'gelora[glue]', with network access to the hub) or a local copy: "
        "task.data_dir=<folder with train and validation files in the GLUE schema>"
    )
    try:
        import datasets
    except ImportError as error:
        raise GlueUnavailable(f"{advice}; `datasets` is not installed") from error
    try:
        loaded = datasets.load_dataset(HUB_DATASET, config)
    except Exception as error:  # offline, unknown host, missing cache: all mean the same here
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise GlueUnavailable(f"{advice}; loading it from the hub failed: {reason}") from error
    return {split: loaded[split].to_list() for split in splits}


def _to_split(rows: list[dict[str, Any]], spec: GlueTask, where: str) -> tuple[Split, int]:
    """A split of the rows with a label; GLUE marks hidden labels as -1 (dropped, counted)."""
    require_columns(rows, [*spec.text_fields, "label"], where)
    kept = [row for row in rows if row["label"] is not None and row["label"] != -1]
    columns = [[str(row[f]) for row in kept] for f in spec.text_fields]
    if spec.label_names is None:
        labels: list = [float(row["label"]) for row in kept]
    else:
        labels = [int(row["label"]) for row in kept]
        bad = [y for y in labels if not 0 <= y < len(spec.label_names)]
        if bad:
            raise ValueError(
                f"{where}: labels {sorted(set(bad))[:5]} outside 0..{len(spec.label_names) - 1} "
                f"({', '.join(spec.label_names)})"
            )
    pairs = columns[1] if len(columns) == 2 else None
    return Split(columns[0], labels, text_pairs=pairs), len(rows) - len(kept)


def load_glue(
    *,
    task: str,
    data_dir: str | None = None,
    split_seed: int = 0,
    validation_size: int | float = 0.1,
) -> TaskData:
    """GLUE ``task`` (``cola``, ``sst2``, ``mrpc``, ``qqp``, ``stsb``, ``mnli``, ``qnli``, ``rte``).

    Args:
        data_dir: a local copy (see the module docstring); ``None`` loads from the hub.
        validation_size: the part of train held out for validation, a fraction or a count.
    """
    if task not in GLUE_TASKS:
        raise ValueError(f"unknown GLUE task {task!r}; known: {', '.join(GLUE_TASKS)}")
    spec = GLUE_TASKS[task]
    needed = ["train", spec.test_split, *spec.extra_test_splits.values()]
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        if not folder.is_dir():
            raise GlueUnavailable(f"task.data_dir={data_dir} is not a folder")
        rows = {split: _local_rows(folder, split) for split in needed}
        source = f"local copy {folder}"
    else:
        rows = _hub_rows(task, needed)
        source = f"{HUB_DATASET} ({task}) from the hub"
    converted = {split: _to_split(rows[split], spec, f"GLUE {task} {split}") for split in needed}
    train, validation = stratified_split(converted["train"][0], validation_size, seed=split_seed)
    dropped = sum(n for _, n in converted.values())
    notes = [
        f"{source}; test: GLUE's {spec.test_split} split (dev-set scores, as the papers report)",
        f"validation: a seeded part ({validation_size}) of train",
    ]
    if dropped:
        notes.append(f"dropped {dropped} rows without a label")
    return TaskData(
        name=f"glue_{task}",
        train=train,
        validation=validation,
        test=converted[spec.test_split][0],
        label_names=None if spec.label_names is None else list(spec.label_names),
        problem="regression" if spec.label_names is None else "classification",
        extra_tests={name: converted[split][0] for name, split in spec.extra_test_splits.items()},
        notes=notes,
    )
