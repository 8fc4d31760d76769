"""How many pairs a sweep needs: the sample-size re-estimation of an internal pilot.

A sweep's first seeds give the spread of each row's paired differences against the reference;
``pairs_for_mde`` turns that spread into the pairs an MDE goal needs (Wittes and Brittain 1990:
re-estimating the size from the nuisance spread, never from the observed effect, keeps the
test's level close to nominal). ``sizing_markdown`` is what ``gelora-table --size-for-mde``
prints: per row the tasks and pairs so far, the spread, the MDE now, the pairs needed and the
seeds per task that makes at the tasks paired now; no mean, interval or score, so the decision to
add seeds cannot be steered by which way the runs point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from gelora.reporting.paired import (
    ALPHA,
    POWER,
    Comparison,
    compare,
    mde_at,
    pairs_for_mde,
    sweep_direction,
)
from gelora.reporting.sweep_runs import SweepRun

CAVEAT = (
    "The MDE treats pairs as independent; when the effect differs between tasks, the "
    "task-then-seed interval stays wider than it, and only more tasks narrow that part."
)


def sizing_markdown(
    runs: Sequence[SweepRun], reference: str, goal: float, differing_plans: bool = False
) -> str:
    """The sizing table for an MDE of at most ``goal`` against ``reference``; ``ValueError``
    for a goal that is not positive, a missing reference or metrics of unknown direction.
    With ``differing_plans``, pairs trained on the reference's own plan are left out, as in
    ``gelora-table --differing-plans``."""
    if not goal > 0:
        raise ValueError(f"--size-for-mde must be a positive number, got {goal}")
    if not any(r.method == reference for r in runs):
        raise ValueError(f"reference method {reference!r} is not in this sweep (--versus)")
    overall, _, _ = compare(runs, reference)
    unit = sweep_direction(runs).unit
    lines = [
        f"Sizing for an MDE of at most {goal:g} {unit} against {reference} "
        f"({100 * POWER:.0f}% power, two-sided alpha {ALPHA:g}), at each row's spread so far:",
        "",
        "| row | tasks | pairs | sd | MDE now | pairs needed | seeds per task |",
        "|---|---|---|---|---|---|---|",
    ]
    for comparison in overall:
        lines.append(
            _sizing_row(comparison.differing_plans_only() if differing_plans else comparison, goal)
        )
    return "\n".join([*lines, "", CAVEAT])


def _sizing_row(comparison: Comparison, goal: float) -> str:
    """One row of the sizing table: tasks, pairs, sd, MDE now, pairs needed, seeds per task."""
    method, n = comparison.method, len(comparison.pairs)
    tasks = len(comparison.task_groups)
    if comparison.sd is None:  # under 2 pairs
        return f"| {method} | {tasks} | {n} | n/a | n/a | n/a | n/a |"
    sd = comparison.sd
    mde = mde_at(sd, n)
    needed = pairs_for_mde(sd, goal)
    if needed is None:
        return f"| {method} | {tasks} | {n} | {sd:.2f} | {mde:.2f} | over 100,000 | n/a |"
    seeds = math.ceil(needed / tasks)
    return f"| {method} | {tasks} | {n} | {sd:.2f} | {mde:.2f} | {needed} | {seeds} |"
