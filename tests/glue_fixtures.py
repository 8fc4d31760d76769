"""Small local copies of GLUE tasks in the ``datasets`` GLUE schema, written by the tests.

The hub is unreachable here, so the GLUE path is tested on these: the real column names, label
ids and split names (MNLI's matched and mismatched dev sets), with synthetic sentences whose
label is learnable from a cue word.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from gelora.data.glue import GLUE_TASKS

WORDS = (
    "the a film cat dog runs eats old new red blue small big house tree river city".split()  # noqa: SIM905
)
CUES = ["good", "bad", "maybe"]


def _sentence(rng: random.Random, cue: str) -> str:
    words = rng.choices(WORDS, k=rng.randint(4, 9))
    words.insert(rng.randrange(len(words)), cue)
    return " ".join(words)


def glue_rows(task: str, n: int, seed: int) -> list[dict]:
    spec = GLUE_TASKS[task]
    rng = random.Random(seed)
    n_classes = 3 if spec.label_names is None else len(spec.label_names)
    rows = []
    for idx in range(n):
        cls = idx % n_classes
        row = {field: _sentence(rng, CUES[cls]) for field in spec.text_fields}
        row["label"] = round(cls * 2.5 + rng.random() * 0.5, 3) if spec.label_names is None else cls
        row["idx"] = idx
        rows.append(row)
    return rows


def write_glue_copy(task: str, folder: Path, *, n_train: int = 90, n_dev: int = 30) -> Path:
    """``train`` as JSON lines, dev splits as CSV (both formats a local copy may use)."""
    import csv

    spec = GLUE_TASKS[task]
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "train.jsonl", "w") as handle:
        for row in glue_rows(task, n_train, seed=0):
            handle.write(json.dumps(row) + "\n")
    for offset, split in enumerate([spec.test_split, *spec.extra_test_splits.values()], start=1):
        rows = glue_rows(task, n_dev, seed=offset)
        with open(folder / f"{split}.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return folder
