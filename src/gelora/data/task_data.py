"""Labelled text as plain, typed splits, and the seeded splitting and subsampling rules.

A split holds single texts or text pairs (NLI, paraphrase), with integer class labels or float
regression targets; an extractive QA task holds ``gelora.data.qa_data.QASplit`` splits instead
(questions over contexts, with answer spans). A split is the same rows for the same seed on every
machine: rows are put in a canonical order (sorted by text) before any random draw, and the draws
use NumPy's legacy ``RandomState`` through scikit-learn, whose streams are fixed across platforms
and releases.
Classification splits are stratified by label; regression splits by quantile bins of the target,
so that every split covers the whole range. Rows that belong together (the lines of one episode)
are split by group instead, each group whole in one split (``grouped_three_way_split``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import train_test_split

from gelora.data.instruction_split import InstructionSplit
from gelora.data.qa_data import QASplit

PROBLEMS = ("classification", "regression", "extractive_qa", "instruction")  # the built-in kinds
# The split type of each task kind that does not hold ``Split`` rows.
SPLIT_TYPES = {"extractive_qa": QASplit, "instruction": InstructionSplit}
_KNOWN_PROBLEMS = list(PROBLEMS)  # and the kinds registered since (``gelora.kinds.register_kind``)
# The kinds whose tasks name their classes: ``label_names`` is given exactly for them (a kind
# says so when it registers: ``TaskKind.labels_named``).
_LABELS_NAMED = {"classification"}
REGRESSION_STRATA = 10  # quantile bins that stand in for classes when splitting a regression set


@dataclass(frozen=True)
class Split:
    """One split: ``texts`` (and, for pair tasks, ``text_pairs``) with their labels.

    Labels are class indices (``int``) for classification and targets (``float``) for regression.
    """

    texts: list[str]
    labels: list[int] | list[float]
    text_pairs: list[str] | None = None

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")
        if self.text_pairs is not None and len(self.text_pairs) != len(self.texts):
            raise ValueError(f"{len(self.texts)} texts but {len(self.text_pairs)} text pairs")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int]) -> Split:
        pairs = None if self.text_pairs is None else [self.text_pairs[i] for i in indices]
        return Split(
            [self.texts[i] for i in indices], [self.labels[i] for i in indices], text_pairs=pairs
        )

    def fingerprint(self) -> str:
        """sha256 of the rows (texts, pairs and labels, in order): runs whose test splits have
        the same fingerprint were scored on exactly the same rows, so they can be paired."""
        rows = [self.texts, self.text_pairs, [float(y) for y in self.labels]]
        return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()

    def inputs(self) -> list[str] | list[tuple[str, str]]:
        """One hashable input per row: the text, or the (text, pair) tuple."""
        if self.text_pairs is None:
            return list(self.texts)
        return list(zip(self.texts, self.text_pairs, strict=True))


@dataclass(frozen=True)
class TaskData:
    """Train, validation and test splits plus what the labels mean.

    Attributes:
        label_names: class names, index = label; ``None`` for regression and extractive QA.
        notes: facts a reader of the run should know (dropped rows, how a split was made).
        problem: ``"classification"``, ``"regression"`` (one float target, ``num_labels`` 1) or
            ``"extractive_qa"`` (``QASplit`` splits; a start and an end logit per token) or
            ``"instruction"`` (``InstructionSplit`` splits: prompts and responses for a causal
            LM; no labels head).
        extra_tests: further test splits scored like ``test`` (MNLI's mismatched set), by name.
    """

    name: str
    train: Split | QASplit | InstructionSplit
    validation: Split | QASplit | InstructionSplit
    test: Split | QASplit | InstructionSplit
    label_names: list[str] | None
    notes: list[str] = field(default_factory=list)
    problem: str = "classification"
    extra_tests: dict[str, Split | QASplit | InstructionSplit] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.problem not in _KNOWN_PROBLEMS:
            raise ValueError(
                f"problem must be one of {', '.join(_KNOWN_PROBLEMS)}, got {self.problem!r}"
            )
        if (self.problem in _LABELS_NAMED) == (self.label_names is None):
            named = " or ".join(sorted(_LABELS_NAMED))
            raise ValueError(f"label_names must be given exactly when the problem is {named}")
        expected = SPLIT_TYPES.get(self.problem, Split)
        if any(not isinstance(split, expected) for split in self.splits().values()):
            raise ValueError(
                f"{self.problem} tasks hold {expected.__name__} splits; extractive_qa QASplit, "
                "instruction InstructionSplit, the others Split"
            )
        if self.problem == "classification":
            n = len(self.label_names)
            for name, split in self.splits().items():
                bad = [y for y in split.labels if not isinstance(y, int) or not 0 <= y < n]
                if bad:
                    raise ValueError(f"{name} split has labels outside 0..{n - 1}: {bad[:3]}")

    @property
    def num_labels(self) -> int:
        """Outputs per input of the head: classes, 1 for regression, and for extractive QA 2 per
        token (start and end logits, Hugging Face's ``num_labels`` of a QA head)."""
        if self.problem == "extractive_qa":
            return 2
        if self.problem == "instruction":
            return 0  # no head: the causal LM's own vocabulary logits
        return 1 if self.label_names is None else len(self.label_names)

    @property
    def is_pair_task(self) -> bool:
        return self.train.text_pairs is not None

    def splits(self) -> dict[str, Split | QASplit]:
        named = {"train": self.train, "validation": self.validation, "test": self.test}
        return named | {f"test_{name}": split for name, split in self.extra_tests.items()}

    def sizes(self) -> dict[str, int]:
        return {name: len(split) for name, split in self.splits().items()}


def strata(
    labels: Sequence[int] | Sequence[float], held_out: float | int | None = None
) -> list[int] | None:
    """What to stratify on: the labels, or a regression target's quantile bin.

    ``None`` (a plain seeded draw) where scikit-learn cannot stratify: a stratum with a single
    row, or a ``held_out`` size (fraction or count) that leaves either side fewer rows than strata.
    """
    if any(isinstance(y, float) for y in labels):
        values = np.asarray(labels, dtype=float)
        n_bins = min(REGRESSION_STRATA, max(1, len(values) // 10))
        edges = np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1])
        keys = np.searchsorted(edges, values, side="right").tolist()
    else:
        keys = list(labels)
    counts: dict = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    if min(counts.values()) < 2:
        return None
    if held_out is not None:
        n_held = round(held_out * len(keys)) if isinstance(held_out, float) else held_out
        if min(n_held, len(keys) - n_held) < len(counts):
            return None
    return keys


def canonical_order(data: Split) -> list[int]:
    """Row indices sorted by content, so a split does not depend on the order rows were read."""
    pairs = data.text_pairs or [""] * len(data)
    return sorted(range(len(data)), key=lambda i: (data.texts[i], pairs[i], data.labels[i]))


def stratified_split(data: Split, held_out: float | int, *, seed: int) -> tuple[Split, Split]:
    """Seeded, stratified ``(rest, held_out)`` split of rows in canonical order.

    Args:
        held_out: a fraction in (0, 1) of the rows, or a number of rows.
    """
    order = canonical_order(data)
    rest, held = train_test_split(
        order,
        test_size=held_out,
        stratify=strata([data.labels[i] for i in order], held_out),
        random_state=seed,
    )
    return data.subset(rest), data.subset(held)


def stratified_three_way_split(
    data: Split, *, validation_fraction: float, test_fraction: float, seed: int
) -> tuple[Split, Split, Split]:
    """Seeded, stratified train/validation/test split of rows in canonical order."""
    if not 0 < validation_fraction < 1 or not 0 < test_fraction < 1:
        raise ValueError("validation_fraction and test_fraction must lie in (0, 1)")
    if validation_fraction + test_fraction >= 1:
        raise ValueError("validation_fraction + test_fraction must be below 1")
    order = canonical_order(data)
    rest, test = train_test_split(
        order,
        test_size=test_fraction,
        stratify=strata([data.labels[i] for i in order], test_fraction),
        random_state=seed,
    )
    validation_share = validation_fraction / (1 - test_fraction)
    train, validation = train_test_split(
        rest,
        test_size=validation_share,
        stratify=strata([data.labels[i] for i in rest], validation_share),
        random_state=seed,
    )
    return data.subset(train), data.subset(validation), data.subset(test)


def grouped_three_way_split(
    data: Split,
    groups: Sequence[str],
    *,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
) -> tuple[Split, Split, Split, tuple[list[str], list[str], list[str]]]:
    """Seeded train/validation/test split of whole groups (a group's rows all in one split).

    The groups (an episode, a document) are sorted, then permuted by NumPy's legacy
    ``RandomState(seed)``: the first ``round(test_fraction * n)`` go to test, the next
    ``round(validation_fraction * n)`` to validation, the rest to train. Not stratified: each
    split holds its groups' labels as they come. Rows keep their order within a split.

    Returns:
        ``(train, validation, test, (train groups, validation groups, test groups))``, each list
        of groups sorted.
    """
    if len(groups) != len(data):
        raise ValueError(f"{len(data)} rows but {len(groups)} groups")
    if not 0 < validation_fraction < 1 or not 0 < test_fraction < 1:
        raise ValueError("validation_fraction and test_fraction must lie in (0, 1)")
    if validation_fraction + test_fraction >= 1:
        raise ValueError("validation_fraction + test_fraction must be below 1")
    names = sorted(set(groups))
    order = [names[i] for i in np.random.RandomState(seed).permutation(len(names))]
    n_test, n_validation = (
        round(test_fraction * len(names)),
        round(validation_fraction * len(names)),
    )
    if min(n_test, n_validation, len(names) - n_test - n_validation) < 1:
        raise ValueError(f"{len(names)} groups are too few to split by group")
    held = (set(order[:n_test]), set(order[n_test : n_test + n_validation]))
    split_of = {g: 2 if g in held[0] else 1 if g in held[1] else 0 for g in names}
    rows: tuple[list[int], list[int], list[int]] = ([], [], [])
    for i, group in enumerate(groups):
        rows[split_of[group]].append(i)
    named = tuple(sorted(g for g in names if split_of[g] == k) for k in range(3))
    return data.subset(rows[0]), data.subset(rows[1]), data.subset(rows[2]), named


def register_split_type(problem: str, split_type: type, *, labels_named: bool = False) -> None:
    """Let ``TaskData`` hold ``problem`` tasks, with ``split_type`` splits and, when
    ``labels_named``, ``label_names`` (``gelora.kinds``)."""
    if problem not in _KNOWN_PROBLEMS:
        _KNOWN_PROBLEMS.append(problem)
    if labels_named:
        _LABELS_NAMED.add(problem)
    else:
        _LABELS_NAMED.discard(problem)
    if split_type is Split:
        SPLIT_TYPES.pop(problem, None)
    else:
        SPLIT_TYPES[problem] = split_type


def stratified_subsample(data: Split, max_samples: int | None, *, seed: int) -> Split:
    """At most ``max_samples`` rows, class proportions kept; all rows if there are fewer."""
    if max_samples is None or max_samples >= len(data):
        return data
    if max_samples < 1:
        raise ValueError(f"max_samples must be >= 1, got {max_samples}")
    kept, _ = train_test_split(
        list(range(len(data))),
        train_size=max_samples,
        stratify=strata(data.labels, max_samples),
        random_state=seed,
    )
    return data.subset(sorted(kept))
