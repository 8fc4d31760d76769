"""How far each row's rank plans sit from the reference's, and how much they move (issue 42).

A comparison of an allocator with uniform LoRA can only show something where the two plans
differ, and a placement control tells little when the plan is one or two rank units from even.
Per (row, task), over the table's completed runs:

- **distinct plans**: how many different plans (ranks per matrix; AdaLoRA: its final ranks) the
  runs trained. In a table the ID sample (``estimator.sample_seed``) and an allocator's batch
  draw (``rank_policy.seed``) are fixed, so this counts what the training seed alone moved;
- **rank units moved off the reference**: per run, ``sum_m max(r_m - u_m, 0) / M`` over the
  adapted matrices m, with u the reference's plan on the same task and M the matrices per block,
  so a unit is one rank on every matrix of one block (at equal parameters, half the absolute
  deviation); shown as the range over the runs, of the reference's total units;
- **half-samples**: where the records carry ``rank_sensitivity`` (methods that read the ID
  profile), the blocks whose rank changes over the five half-samples of the ID sample, and the
  distinct plans over them where the record lists them.

- **batch draws**: where the records carry ``method_summary.plan_draws`` (an allocator that
  scores the model, run with ``rank_policy.stability_seeds``), the distinct plans over its draws
  and each draw plan's rank units off the reference (a section of its own).

Plans over fresh draws of the ID sample (at least five) come from ``gelora-plan --compare
estimator.sample_seed=0,1,2,3,4`` and are committed beside a table's protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gelora.table.sweep_runs import SweepRun


@dataclass(frozen=True)
class PlanSpread:
    """One (row, task): its runs' plans against the reference's."""

    method: str
    task: str
    runs: int
    distinct_plans: int
    moved: tuple[float, ...]  # rank units off the reference, per run (empty: no reference)
    reference_units: float | None  # the reference plan's units (blocks x rank)
    unstable_blocks: tuple[int, ...]  # over the half-samples, per run that records them
    blocks: int | None
    resampled_plans: tuple[int, ...]  # distinct plans over the half-samples, where listed


def _plan_key(ranks: dict[str, int]) -> tuple:
    return tuple(sorted(ranks.items()))


def rank_units(ranks: dict[str, int], blocks: int) -> float:
    """A plan's size in block rank units: its ranks summed over the matrices, divided by the
    matrices per block (uniform rank r on B blocks: r x B)."""
    return sum(ranks.values()) / (len(ranks) / blocks)


def rank_units_moved(ranks: dict[str, int], reference: dict[str, int], blocks: int) -> float:
    """``sum_m max(r_m - u_m, 0) / M`` over the reference's matrices (M = matrices per block);
    a matrix the plan leaves out counts as rank 0."""
    if not reference or blocks <= 0:
        raise ValueError("a reference plan with at least one block is needed")
    per_block = len(reference) / blocks
    gained = sum(max(ranks.get(name, 0) - rank, 0) for name, rank in reference.items())
    gained += sum(rank for name, rank in ranks.items() if name not in reference)
    return gained / per_block


def plan_spreads(runs: Sequence[SweepRun], reference: str) -> list[PlanSpread]:
    """Every (row, task) with a trained plan, rows and tasks in first-seen order, the reference
    row included (its own moves are 0 when its plan is one across seeds)."""
    done = [r for r in runs if r.status == "completed" and r.trained_ranks]
    references = {}
    for run in done:
        if run.method == reference and run.task not in references:
            references[run.task] = run
    spreads = []
    methods = list(dict.fromkeys(r.method for r in done))
    tasks = list(dict.fromkeys(r.task for r in done))
    for method in methods:
        for task in tasks:
            mine = [r for r in done if (r.method, r.task) == (method, task)]
            if mine:
                spreads.append(_spread(method, task, mine, references.get(task)))
    return spreads


def _spread(method: str, task: str, mine: list[SweepRun], reference: SweepRun | None):
    blocks = len(reference.block_ranks) if reference is not None else None
    moved: tuple[float, ...] = ()
    units = None
    if reference is not None and blocks:
        moved = tuple(rank_units_moved(r.trained_ranks, reference.trained_ranks, blocks)
                      for r in mine)  # fmt: skip
        units = rank_units(reference.trained_ranks, blocks)
    sensitivities = [r.sensitivity for r in mine if r.sensitivity]
    unstable = tuple(len(s.get("unstable_blocks") or ()) for s in sensitivities)
    resampled = tuple(
        len({tuple(p) for p in s["plans"]})
        for s in sensitivities
        if isinstance(s.get("plans"), list)
    )
    return PlanSpread(
        method, task, len(mine), len({_plan_key(r.trained_ranks) for r in mine}), moved, units,
        unstable, blocks or (len(mine[0].block_ranks) or None), resampled,
    )  # fmt: skip


def _number(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


def _range(values: Sequence[float]) -> str:
    low, high = min(values), max(values)
    return _number(low) if low == high else f"{_number(low)}-{_number(high)}"


def plan_stability_markdown(runs: Sequence[SweepRun], reference: str) -> str:
    """The "Rank plans" section: per (row, task), distinct plans, units moved off ``reference``
    and the half-sample spread; empty when no run records a plan."""
    spreads = [s for s in plan_spreads(runs, reference) if s.method != reference]
    if not spreads:
        return ""
    lines = [
        f"## Rank plans: how far from {reference}'s, and how stable",
        "",
        f"| method | task | runs | distinct plans | rank units moved off {reference} | "
        "blocks moving over half-samples | distinct plans over half-samples |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for s in spreads:
        moved = "-" if not s.moved else f"{_range(s.moved)} of {_number(s.reference_units)}"
        unstable = "-" if not s.unstable_blocks else f"{_range(s.unstable_blocks)} of {s.blocks}"
        resampled = "-" if not s.resampled_plans else _range(s.resampled_plans)
        lines.append(
            f"| {s.method} | {s.task} | {s.runs} | {s.distinct_plans} | {moved} | {unstable} | "
            f"{resampled} |"
        )
    caption = (
        "Distinct plans: over the row's runs in this table (ranks per matrix; AdaLoRA: its final "
        "ranks); the ID sample and an allocator's batches are drawn with fixed seeds in a table, "
        "so this counts what the training seed alone moved. Rank units moved: per run, the ranks "
        f"above {reference}'s plan on the same task, summed over the matrices and divided by the "
        "matrices per block (one unit: one rank on every matrix of one block), as the range over "
        f"the runs, of {reference}'s total. Half-samples: the blocks whose rank changes when the "
        "plan is redrawn on each of the five half-samples of the ID sample (rank_sensitivity; "
        "only for rows that read the ID profile), as the range over the runs; distinct plans over "
        "them only where the record lists the plans. A row whose plan moves 0 units is the "
        "reference's plan: its pairs can show only what else differs (rate, initialisation). "
        "Plans over fresh sample or batch draws: gelora-plan --compare estimator.sample_seed=... "
        "or rank_policy.seed=...."
    )
    return "\n".join(lines) + f"\n\n{caption}\n" + draws_markdown(runs, reference)


def draws_markdown(runs: Sequence[SweepRun], reference: str) -> str:
    """Per (row, task) whose records carry plans over batch draws: the draws per run, the
    distinct plans among them and their rank units off ``reference``'s plan; empty if none."""
    done = [r for r in runs if r.status == "completed" and r.plan_draws]
    references = {}
    for run in runs:
        if run.method == reference and run.status == "completed" and run.trained_ranks:
            references.setdefault(run.task, run)
    lines = []
    for method, task in dict.fromkeys((r.method, r.task) for r in done):
        mine = [r.plan_draws for r in done if (r.method, r.task) == (method, task)]
        distinct = [d.get("distinct_plans", len({tuple(p) for p in d["ranks"]})) for d in mine]
        moved = "-"
        ref = references.get(task)
        if ref is not None and ref.block_ranks:
            blocks = len(ref.block_ranks)
            units = [rank_units_moved(dict(zip(d["targets"], plan, strict=True)),
                                      ref.trained_ranks, blocks)
                     for d in mine for plan in d["ranks"]]  # fmt: skip
            moved = _range(units)
        draws, spread = _range([len(d["ranks"]) for d in mine]), _range(distinct)
        lines.append(f"| {method} | {task} | {len(mine)} | {draws} | {spread} | {moved} |")
    if not lines:
        return ""
    head = [
        "",
        "### Plans over batch draws",
        "",
        f"| method | task | runs | draws | distinct plans over draws | rank units moved off "
        f"{reference} |",
        "|---|---|---:|---:|---:|---:|",
    ]
    caption = (
        "Draws: the plans an allocator that scores the model made on disjoint sets of batch "
        "draws (rank_policy.stability_seeds; the first is the run's own plan), per run; distinct "
        "plans among them, as the range over the runs; rank units moved: each draw plan's, as "
        "above, the range over every draw of every run."
    )
    return "\n".join([*head, *lines]) + f"\n\n{caption}\n"
