"""Seeded draws of rows shared by the split types whose rows carry no class to stratify on."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sklearn.model_selection import train_test_split

S = TypeVar("S")


def subsample_in_canonical_order(
    split: S, max_samples: int | None, *, seed: int, canonical_order: Callable[[S], list[int]]
) -> S:
    """At most ``max_samples`` rows of ``split`` drawn with ``seed`` from its
    ``canonical_order`` (content order, so the draw does not depend on the order rows were read)
    and kept in that order; all of them if there are fewer.

    Raises:
        ValueError: ``max_samples`` below 1.
    """
    if max_samples is None or max_samples >= len(split):
        return split
    if max_samples < 1:
        raise ValueError(f"max_samples must be >= 1, got {max_samples}")
    order = canonical_order(split)
    kept, _ = train_test_split(list(range(len(order))), train_size=max_samples, random_state=seed)
    return split.subset([order[k] for k in sorted(kept)])
