"""Labelled text as plain, typed splits, and the seeded splitting and subsampling rules.

A split is the same rows for the same seed on every machine: rows are put in a canonical order
(sorted by text) before any random draw, and the draws use NumPy's legacy ``RandomState`` through
scikit-learn, whose streams are fixed across platforms and releases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sklearn.model_selection import train_test_split


@dataclass(frozen=True)
class Split:
    """One split of a single-sentence classification task."""

    texts: list[str]
    labels: list[int]

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int]) -> Split:
        return Split([self.texts[i] for i in indices], [self.labels[i] for i in indices])


@dataclass(frozen=True)
class TaskData:
    """Train, validation and test splits plus what the labels mean."""

    name: str
    train: Split
    validation: Split
    test: Split
    label_names: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test),
        }


def stratified_three_way_split(
    data: Split, *, validation_fraction: float, test_fraction: float, seed: int
) -> tuple[Split, Split, Split]:
    """Seeded, stratified train/validation/test split of rows in canonical order."""
    if not 0 < validation_fraction < 1 or not 0 < test_fraction < 1:
        raise ValueError("validation_fraction and test_fraction must lie in (0, 1)")
    if validation_fraction + test_fraction >= 1:
        raise ValueError("validation_fraction + test_fraction must be below 1")
    order = sorted(range(len(data)), key=lambda i: (data.texts[i], data.labels[i]))
    labels = [data.labels[i] for i in order]
    rest, test = train_test_split(
        order, test_size=test_fraction, stratify=labels, random_state=seed
    )
    rest_labels = [data.labels[i] for i in rest]
    train, validation = train_test_split(
        rest,
        test_size=validation_fraction / (1 - test_fraction),
        stratify=rest_labels,
        random_state=seed,
    )
    return data.subset(train), data.subset(validation), data.subset(test)


def stratified_subsample(data: Split, max_samples: int | None, *, seed: int) -> Split:
    """At most ``max_samples`` rows, class proportions kept; all rows if there are fewer."""
    if max_samples is None or max_samples >= len(data):
        return data
    if max_samples < 1:
        raise ValueError(f"max_samples must be >= 1, got {max_samples}")
    n_classes = len(set(data.labels))
    stratify = data.labels if max_samples >= n_classes else None
    kept, _ = train_test_split(
        list(range(len(data))), train_size=max_samples, stratify=stratify, random_state=seed
    )
    return data.subset(sorted(kept))
