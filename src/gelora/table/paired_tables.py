"""Rendering ``gelora.table.paired``: "Paired differences versus <reference>" in markdown and
LaTeX, one row per method over all (task, seed) pairs, then one cell per task.

The caption says what was paired (identical test rows), how the intervals, the MDE, the
verdict and the p-value were computed, that verdicts rest on the task level (Student's t over the
task means, with the number of tasks beside them; the flat interval and Wilcoxon p treat pairs as
independent and are labelled so), the LoRA scaling rule(s) of the runs, which pairs were refused
or left out and why, and which rows may be under-trained. Under the methods' rows, the noise
floor: the reference against itself under another seed (``gelora.table.paired.noise_floor``).
``paired_csv`` writes the same rows as ``paired.csv``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from gelora.atomic import write_text_atomic
from gelora.table.paired import (
    ALPHA,
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    CONFIDENCE,
    DIFFERENT_TEST_ROWS,
    EQUIVALENCE_CONFIDENCE,
    EVERY_PAIR,
    MIN_VERDICT_PAIRS,
    MIN_WILCOXON_PAIRS,
    POWER,
    Comparison,
    Direction,
    PairingRules,
    Refusal,
    compare,
    holm_adjusted,
    noise_floor,
    plural,
    sweep_direction,
    unfingerprinted_pairs,
)
from gelora.table.sweep_runs import SweepRun
from gelora.table.tables import latex_escape, scaling_note

HEADER = [
    "method",
    "tasks",
    "pairs",
    "mean difference",
    "task-level 95% CI",
    "task-level MDE",
    "verdict (task level)",
    "hierarchical 95% CI",
    "flat 95% CI (pairs as independent)",
    "Wilcoxon p (pairs as independent)",
    "Holm p",
    "wins/ties/losses",
]
CSV_FIELDS = [
    "row", "tasks", "pairs", "mean_difference", "sd", "task_level_units", "task_level_mean",
    "task_level_sd", "task_level_ci95_low", "task_level_ci95_high", "task_level_mde", "verdict",
    "hierarchical_ci95_low", "hierarchical_ci95_high", "flat_ci95_low", "flat_ci95_high",
    "flat_mde_pairs_as_independent", "wilcoxon_p", "holm_p", "wins", "ties", "losses",
    "left_out_same_plan", "best_at_last", "best_step_recorded",
]  # fmt: skip


@dataclass(frozen=True)
class PairedSection:
    """Everything the paired tables show, computed once for both formats."""

    reference: str
    tasks: list[str]
    overall: list[Comparison]
    holm: dict[str, float | None]  # method -> Holm-adjusted Wilcoxon p over ``overall``
    per_task: dict[tuple[str, str], Comparison]
    refused: list[Refusal]
    caption: str
    direction: Direction
    margin: float | None = None  # --margin: the equivalence margin, in the difference's unit
    noise: Comparison | None = None  # the reference against itself under another seed
    left_out: dict[str, int] = field(default_factory=dict)  # --differing-plans: same-plan pairs
    same_rate: bool = False  # pairs only of runs trained at one learning rate

    @property
    def title(self) -> str:
        rate = " at the same learning rate" if self.same_rate else ""
        return f"Paired differences versus {self.reference}{rate}"

    def verdict(self, comparison: Comparison) -> str:
        return comparison.verdict(self.margin)


def refused_line(refused: Sequence[Refusal]) -> str | None:
    """One line naming the pairs refused because their test rows differ (None if none)."""
    names = [r.text() for r in refused if r.reason == DIFFERENT_TEST_ROWS]
    if not names:
        return None
    return f"Refused {plural(len(names), 'pair')} {DIFFERENT_TEST_ROWS}: {', '.join(names)}."


def same_plan_line(comparisons: Sequence[Comparison]) -> str | None:
    """One line naming the methods that trained the reference's own ranks, matrix for matrix
    (AdaLoRA: its final ranks), in some pairs:
    there the two differ only in what else the method changes (rate, scaling, initialisation),
    and a method that always matches the reference's plan tests no placement at all."""
    counts = [
        f"{c.method} ({sum(p.same_plan for p in c.pairs)} of {plural(len(c.pairs), 'pair')})"
        for c in comparisons
        if any(p.same_plan for p in c.pairs)
    ]
    if not counts:
        return None
    reference = comparisons[0].reference
    return f"Same ranks as {reference}, matrix for matrix, in: {', '.join(counts)}."


def _other_refusals_line(refused: Sequence[Refusal]) -> str | None:
    others = [f"{r.text()} ({r.reason})" for r in refused if r.reason != DIFFERENT_TEST_ROWS]
    return f"Also not paired: {'; '.join(others)}." if others else None


def under_trained_lines(comparisons: Sequence[Comparison]) -> list[str]:
    """One line per row most of whose runs (more than half of those that record it) had their
    best validation at the last evaluation: their scores may still have been rising."""
    lines = []
    for comparison in comparisons:
        k, n = comparison.best_at_last
        if n and 2 * k > n:
            lines.append(
                f"{comparison.method} may be under-trained: {k} of {plural(n, 'run')} had their "
                "best validation at the last evaluation."
            )
    return lines


def _interval_text(section_tasks: int) -> str:
    flat = (
        f"the flat one resamples the pairs as if independent ({BOOTSTRAP_RESAMPLES:,} "
        f"resamples, numpy default_rng({BOOTSTRAP_SEED}))"
    )
    nested = (
        "the hierarchical one resamples tasks with replacement, then seeds within each drawn "
        "task, the statistic the mean over all drawn pairs"
    )
    return (
        f"Task level ({plural(section_tasks, 'task')} paired): pairs of one task share its data "
        "and test rows, so the tasks are the independent draws; with two tasks or more the "
        "unit is a task's mean difference, and the task-level mean, 95% CI (Student's t over "
        f"the task means, k - 1 degrees of freedom) and MDE ({100 * POWER:.0f}% power, "
        f"two-sided alpha {ALPHA:g}: (t_(1-alpha/2, k-1) + t_(power, k-1)) x SD / sqrt(k), SD "
        "of the k task means with ddof 1) rest on them; with one task the unit is its seed. "
        "The spread of the task means holds the between-task spread of the effect, which more "
        f"seeds do not shrink. Beside it, {100 * CONFIDENCE:.0f}% percentile bootstrap "
        f"intervals of the pooled mean: {nested}; {flat}."
    )


def _verdict_text(margin: float | None) -> str:
    equivalence = (
        f" equivalent within +/-{margin:g} when the task-level "
        f"{100 * EQUIVALENCE_CONFIDENCE:.0f}% interval lies inside [-{margin:g}, +{margin:g}] "
        "(two one-sided tests, --margin);"
        if margin is not None
        else ""
    )
    return (
        "Verdict (task level): ahead or behind by the task-level mean when its 95% interval "
        f"excludes 0;{equivalence} else no detectable difference, with the task-level MDE and "
        f"what it rests on; none under {plural(MIN_VERDICT_PAIRS, 'pair')}."
    )


def _noise_text(noise: Comparison | None, reference: str) -> str | None:
    if noise is None:
        return None
    if not noise.pairs:
        return f"No noise floor: no task has two seeds of {reference} on identical test rows."
    return (
        f"Noise floor ({noise.method}): {reference}'s run of each seed paired with its next seed "
        "in the same task (cyclically; identical test rows), the same statistics; with three or "
        "more seeds per task its mean is 0 by construction, its intervals and MDE show what a "
        "difference that is only the training seed looks like at the seed level. Its task "
        "means are 0 by construction, so it has no task-level columns or verdict. Cyclic pairs "
        "share runs, so its Wilcoxon p is only indicative; it is not in the Holm adjustment."
    )


def _left_out_line(left_out: dict[str, int], totals: dict[str, int]) -> str | None:
    if not totals:
        return None
    counts = ", ".join(f"{m} {left_out.get(m, 0)} of {totals[m]}" for m in totals)
    return (
        "--differing-plans: pairs whose two runs trained identical rank plans (equal ranks per "
        f"matrix; AdaLoRA: its final ranks) left out: {counts}. The noise floor keeps all its "
        "pairs (one method, one plan per task)."
    )


def _same_rate_line(overall: Sequence[Comparison]) -> str:
    """What the same-rate section paired: per row, the tasks where it and the reference trained
    at one learning rate."""
    rows = [
        f"{c.method} {', '.join(dict.fromkeys(p.task for p in c.pairs)) or 'none'} "
        f"({plural(len(c.pairs), 'pair')})"
        for c in overall
    ]
    return (
        "Same learning rate: only pairs whose two runs trained at one optimizer.lr, so the "
        "difference is the plan's alone, not the rate's; tasks with a shared rate: "
        f"{'; '.join(rows)}."
    )


def paired_section(
    runs: Sequence[SweepRun],
    reference: str,
    rules: PairingRules = EVERY_PAIR,
    same_rate: bool = False,
) -> PairedSection:
    """The paired differences of every row against ``reference``: on (task, seed), or with
    ``same_rate`` on (task, seed, learning rate); judged by ``rules`` (``--margin``,
    ``--differing-plans``)."""
    overall, per_task, refused = compare(runs, reference, same_rate)
    direction = sweep_direction(runs)
    same_plan = same_plan_line(overall)
    left_out: dict[str, int] = {}
    totals: dict[str, int] = {}
    if rules.differing_plans:
        for comparison in overall:
            totals[comparison.method] = len(comparison.pairs)
            left_out[comparison.method] = sum(p.same_plan for p in comparison.pairs)
        overall = [rules.kept(c) for c in overall]
        per_task = {key: rules.kept(c) for key, c in per_task.items()}
        same_plan = None
    noise = noise_floor(runs, reference, direction)
    paired_tasks = {p.task for c in overall for p in c.pairs}
    raw_p = [c.wilcoxon.p_value for c in overall]
    holm = dict(zip((c.method for c in overall), holm_adjusted(raw_p), strict=True))
    text = (
        f"Paired differences: {direction.describe_difference(reference)}, over the "
        "(task, seed) pairs on which both completed and were scored on identical test rows "
        "(equal sha256 of the test split's rows), pooled over tasks and seeds. "
        f"{_interval_text(len(paired_tasks))} p: two-sided Wilcoxon "
        "signed-rank test over the pairs as if independent (scipy.stats.wilcoxon, zero "
        "differences dropped), not given under "
        f"{MIN_WILCOXON_PAIRS} non-zero differences. Holm p: the Wilcoxon p-values adjusted "
        "for the methods compared with the same reference (Holm's step-down method, 1979, over "
        f"the {plural(sum(p is not None for p in raw_p), 'p-value')} "
        f"given). {_verdict_text(rules.margin)} {scaling_note(runs)}"
    )
    bare = unfingerprinted_pairs(overall, runs)
    notes = [
        _same_rate_line(overall) if same_rate else None,
        _noise_text(noise, reference),
        same_plan,
        _left_out_line(left_out, totals),
        refused_line(refused),
        _other_refusals_line(refused),
        f"{plural(bare, 'pair')} paired without a test-row fingerprint (older records)."
        if bare
        else None,
        *under_trained_lines([*overall, replace(noise, method=f"{reference} (noise floor)")]),
    ]
    caption = " ".join([text, *(n for n in notes if n)])
    tasks = list(dict.fromkeys(r.task for r in runs))
    return PairedSection(
        reference, tasks, overall, holm, per_task, refused, caption, direction,
        rules.margin, noise, left_out, same_rate,
    )  # fmt: skip


def _interval_cell(interval: tuple[float, float] | None) -> str:
    return "-" if interval is None else f"[{interval[0]:+.2f}, {interval[1]:+.2f}]"


def _rows(section: PairedSection) -> list[tuple[Comparison, float | None, bool]]:
    """The methods' rows with their Holm p, then the noise floor (no Holm p, no task level)."""
    rows = [(c, section.holm[c.method], True) for c in section.overall]
    if section.noise is not None and section.noise.pairs:
        rows.append((section.noise, None, False))
    return rows


def _overall_cells(
    section: PairedSection, comparison: Comparison, holm_p: float | None, task_level: bool
) -> list[str]:
    if not comparison.pairs:
        return [comparison.method, "0", "0", *["-"] * (len(HEADER) - 3)]
    level = comparison.task_level if task_level else None
    mde = level.mde if level is not None else None
    return [
        comparison.method,
        str(len(comparison.task_groups)),
        str(len(comparison.pairs)),
        f"{comparison.mean_difference:+.2f}",
        _interval_cell(level.interval() if level is not None else None),
        f"{mde:.2f} ({level.units})" if level is not None and mde is not None else "-",
        section.verdict(comparison) if task_level else "-",
        _interval_cell(comparison.hierarchical_interval),
        _interval_cell(comparison.interval),
        comparison.wilcoxon.text(),
        f"{holm_p:.3g}" if holm_p is not None else "-",
        "/".join(map(str, comparison.wins_ties_losses)),
    ]


def _task_cell(comparison: Comparison) -> str:
    if not comparison.pairs:
        return "-"
    wins, ties, losses = comparison.wins_ties_losses
    return f"{comparison.mean_difference:+.2f} ({wins}/{ties}/{losses})"


def paired_markdown(section: PairedSection) -> str:
    lines = [
        f"## {section.title}",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|---|" + "---:|" * (len(HEADER) - 1),
    ]
    lines += ["| " + " | ".join(_overall_cells(section, *row)) + " |" for row in _rows(section)]
    lines += [
        "",
        f"Per task: mean difference in {section.direction.unit} (wins/ties/losses).",
        "",
        "| method | " + " | ".join(section.tasks) + " |",
        "|---|" + "---:|" * len(section.tasks),
    ]
    for comparison in section.overall:
        cells = [_task_cell(section.per_task[comparison.method, t]) for t in section.tasks]
        lines.append(f"| {comparison.method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\n{section.caption}\n"


def paired_latex(section: PairedSection) -> str:
    def row(cells: Sequence[str]) -> str:
        return " & ".join(latex_escape(c) for c in cells) + r" \\"

    lines = [
        f"% {section.title}",
        r"\begin{tabular}{l r r r r r l r r r r r}",
        r"\toprule",
        row(
            [
                "Method",
                "Tasks",
                "Pairs",
                "Mean diff.",
                "Task-level 95% CI",
                "Task-level MDE",
                "Verdict (task level)",
                "Hier. 95% CI",
                "Flat 95% CI (pairs indep.)",
                "Wilcoxon p (pairs indep.)",
                "Holm p",
                "W/T/L",
            ]
        ),
        r"\midrule",
        *(row(_overall_cells(section, *line)) for line in _rows(section)),
        r"\bottomrule",
        r"\end{tabular}",
        "",
        r"\begin{tabular}{l " + "r " * len(section.tasks) + "}",
        r"\toprule",
        row(["Method", *section.tasks]),
        r"\midrule",
    ]
    for comparison in section.overall:
        cells = [_task_cell(section.per_task[comparison.method, t]) for t in section.tasks]
        lines.append(row([comparison.method, *cells]))
    lines += [r"\bottomrule", r"\end{tabular}", f"% {section.caption}"]
    return "\n".join(lines) + "\n"


def paired_csv(section: PairedSection, path: Path) -> Path:
    """The paired rows (the noise floor last) as CSV: both intervals, the MDE, the verdict, the
    same-plan pairs left out and the runs best at their last evaluation."""
    lines: list[dict[str, object]] = []
    for comparison, holm_p, task_level in _rows(section):
        flat, nested = comparison.interval, comparison.hierarchical_interval
        level = comparison.task_level if task_level else None
        level_interval = level.interval() if level is not None else None
        wins, ties, losses = comparison.wins_ties_losses
        at_last, recorded = comparison.best_at_last
        lines.append({
            "row": comparison.method,
            "tasks": len(comparison.task_groups),
            "pairs": len(comparison.pairs),
            "mean_difference": comparison.mean_difference,
            "sd": comparison.sd,
            "task_level_units": level.units if level is not None else None,
            "task_level_mean": level.mean if level is not None else None,
            "task_level_sd": level.sd if level is not None else None,
            "task_level_ci95_low": level_interval[0] if level_interval else None,
            "task_level_ci95_high": level_interval[1] if level_interval else None,
            "task_level_mde": level.mde if level is not None else None,
            "verdict": section.verdict(comparison) if comparison.pairs and task_level else "",
            "hierarchical_ci95_low": nested[0] if nested else None,
            "hierarchical_ci95_high": nested[1] if nested else None,
            "flat_ci95_low": flat[0] if flat else None,
            "flat_ci95_high": flat[1] if flat else None,
            "flat_mde_pairs_as_independent": comparison.flat_mde,
            "wilcoxon_p": comparison.wilcoxon.p_value,
            "holm_p": holm_p,
            "wins": wins,
            "ties": ties,
            "losses": losses,
            "left_out_same_plan": section.left_out.get(comparison.method, 0),
            "best_at_last": at_last,
            "best_step_recorded": recorded,
        })  # fmt: skip
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for line in lines:
        writer.writerow({k: "" if v is None else v for k, v in line.items()})
    write_text_atomic(path, buffer.getvalue())
    return path
