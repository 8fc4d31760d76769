"""How many tasks (and seeds) a sweep needs: the sample-size re-estimation of an internal pilot.

A sweep's first runs give the spread of each row's paired differences against the reference;
``pairs_for_mde`` turns a spread into the units an MDE goal needs (Wittes and Brittain 1990:
re-estimating the size from the nuisance spread, never from the observed effect, keeps the
test's level close to nominal). Verdicts rest on the task level (``gelora.table.paired``:
Student's t over the task means), so the size is a number of tasks, at the spread of the task
means. That spread has two parts (a one-way random-effects split, e.g. Searle, Casella and
McCulloch, *Variance Components*, 1992, ch. 3): the within-task spread of a pair, sd_w (pooled
over tasks, ddof 1 each), which more seeds divide, and the between-task spread of the effect,
``sd_b^2 = max(sd_k^2 - sd_w^2 / s, 0)`` with sd_k the task means' spread and s the harmonic
mean of the seeds per task, which no number of seeds shrinks. ``sizing_markdown`` is what
``gelora-table --size-for-mde`` prints: per row the tasks and seeds so far, the spreads, the
task-level MDE now, the tasks the goal needs at these seeds and with unlimited seeds; no mean,
interval or score, so the decision to add tasks or seeds cannot be steered by which way the runs
point. With one task the unit is the seed, and the table gives the seeds that task needs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gelora.table.paired import (
    ALPHA,
    EVERY_PAIR,
    POWER,
    Comparison,
    PairingRules,
    compare,
    pairs_for_mde,
    sweep_direction,
)
from gelora.table.sweep_runs import SweepRun

CAVEAT = (
    "Tasks needed: the fewest tasks whose task-level MDE, (t_(1-alpha/2, k-1) + t_(power, k-1)) "
    "x SD / sqrt(k), is at most the goal, at the spread of the task means now (these seeds per "
    "task) and at the between-task spread alone (unlimited seeds). A row whose goal needs more "
    "tasks even with unlimited seeds cannot reach it by adding seeds."
)


@dataclass(frozen=True)
class Spread:
    """The spread of one row's paired differences, split into its within- and between-task
    parts (see the module docstring)."""

    tasks: int
    pairs: int
    seeds_per_task: float  # the harmonic mean of each task's pairs
    task_means_sd: float | None  # sd_k, ddof 1; None under 2 tasks
    within_sd: float | None  # sd_w, pooled over the tasks with 2 pairs or more
    between_sd: float | None  # sd_b; None under 2 tasks or without a within-task spread

    @classmethod
    def of(cls, comparison: Comparison) -> Spread:
        groups = [np.asarray(g, dtype=float) for g in comparison.task_groups]
        sizes = [g.size for g in groups]
        harmonic = len(sizes) / sum(1 / n for n in sizes) if sizes else 0.0
        squares = sum(float(((g - g.mean()) ** 2).sum()) for g in groups if g.size > 1)
        freedom = sum(g.size - 1 for g in groups if g.size > 1)
        within = math.sqrt(squares / freedom) if freedom else None
        means_sd = float(np.std([g.mean() for g in groups], ddof=1)) if len(groups) > 1 else None
        between = None
        if means_sd is not None and within is not None:
            between = math.sqrt(max(means_sd**2 - within**2 / harmonic, 0.0))
        return cls(len(groups), sum(sizes), harmonic, means_sd, within, between)


def sizing_markdown(
    runs: Sequence[SweepRun], reference: str, goal: float, rules: PairingRules = EVERY_PAIR
) -> str:
    """The sizing table for a task-level MDE of at most ``goal`` against ``reference``;
    ``ValueError`` for a goal that is not positive, a missing reference or metrics of unknown
    direction. The pairs are those ``rules`` keep (``--differing-plans``: not those trained on
    the reference's own plan)."""
    if not goal > 0:
        raise ValueError(f"--size-for-mde must be a positive number, got {goal}")
    if not any(r.method == reference for r in runs):
        raise ValueError(f"reference method {reference!r} is not in this sweep (--versus)")
    overall, _, _ = compare(runs, reference)
    unit = sweep_direction(runs).unit
    lines = [
        f"Sizing for a task-level MDE of at most {goal:g} {unit} against {reference} "
        f"({100 * POWER:.0f}% power, two-sided alpha {ALPHA:g}), at each row's spread so far:",
        "",
        "| row | tasks | pairs | seeds per task | SD of task means | within-task SD | "
        "between-task SD | task-level MDE now | tasks needed (these seeds) | "
        "tasks needed (unlimited seeds) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for comparison in overall:
        lines.append(_sizing_row(rules.kept(comparison), goal))
    return "\n".join([*lines, "", CAVEAT])


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _needed(sd: float | None, goal: float) -> str:
    if sd is None:
        return "n/a"
    needed = pairs_for_mde(sd, goal)
    return "over 100,000" if needed is None else str(needed)


def _sizing_row(comparison: Comparison, goal: float) -> str:
    """One row of the sizing table (with one task: its seeds, in the task columns' place)."""
    spread = Spread.of(comparison)
    head = (
        f"| {comparison.method} | {spread.tasks} | {spread.pairs} | {spread.seeds_per_task:.1f} | "
    )
    if spread.tasks == 1:  # the unit is the seed: the seeds the one task needs
        sd = spread.within_sd
        return (
            head + f"n/a | {_number(sd)} | n/a | {_number(comparison.mde)} (seeds) | "
            f"{_needed(sd, goal)} seeds of 1 task | n/a |"
        )
    sd_k = spread.task_means_sd
    return (  # the task-level MDE is the comparison's own (Comparison.mde: t over task means)
        head + f"{_number(sd_k)} | {_number(spread.within_sd)} | {_number(spread.between_sd)} | "
        f"{_number(comparison.mde)} | {_needed(sd_k, goal)} | {_needed(spread.between_sd, goal)} |"
    )
