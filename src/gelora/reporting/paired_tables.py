"""Rendering ``gelora.reporting.paired``: "Paired differences versus <reference>" in markdown and
LaTeX, one row per method over all (task, seed) pairs, then one cell per task.

The caption says what was paired (identical test rows), how the interval and the p-value were
computed, the LoRA scaling rule(s) of the runs, and which pairs were refused and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gelora.reporting.paired import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    CONFIDENCE,
    DIFFERENT_TEST_ROWS,
    MIN_WILCOXON_PAIRS,
    Comparison,
    Direction,
    Refusal,
    compare,
    holm_adjusted,
    plural,
    sweep_direction,
    unfingerprinted_pairs,
)
from gelora.reporting.sweep_runs import SweepRun
from gelora.reporting.tables import latex_escape, scaling_note

HEADER = [
    "method",
    "pairs",
    "mean difference",
    "95% CI",
    "Wilcoxon p",
    "Holm p",
    "wins/ties/losses",
]


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


def paired_section(runs: Sequence[SweepRun], reference: str) -> PairedSection:
    overall, per_task, refused = compare(runs, reference)
    direction = sweep_direction(runs)
    raw_p = [c.wilcoxon.p_value for c in overall]
    holm = dict(zip((c.method for c in overall), holm_adjusted(raw_p), strict=True))
    text = (
        f"Paired differences: {direction.describe_difference(reference)}, over the "
        "(task, seed) pairs on which both completed and were scored on identical test rows "
        "(equal sha256 of the test split's rows), pooled over tasks and seeds. "
        f"CI: {100 * CONFIDENCE:.0f}% percentile bootstrap of the mean ({BOOTSTRAP_RESAMPLES:,} "
        f"resamples of the pairs, numpy default_rng({BOOTSTRAP_SEED})). p: two-sided Wilcoxon "
        "signed-rank test (scipy.stats.wilcoxon, zero differences dropped), not given under "
        f"{MIN_WILCOXON_PAIRS} non-zero differences. Holm p: the Wilcoxon p-values adjusted "
        "for the methods compared with the same reference (Holm's step-down method, 1979, over "
        f"the {plural(sum(p is not None for p in raw_p), 'p-value')} "
        f"given). {scaling_note(runs)}"
    )
    bare = unfingerprinted_pairs(overall, runs)
    notes = [
        same_plan_line(overall),
        refused_line(refused),
        _other_refusals_line(refused),
        f"{plural(bare, 'pair')} paired without a test-row fingerprint (older records)."
        if bare
        else None,
    ]
    caption = " ".join([text, *(n for n in notes if n)])
    tasks = list(dict.fromkeys(r.task for r in runs))
    return PairedSection(reference, tasks, overall, holm, per_task, refused, caption, direction)


def _overall_cells(comparison: Comparison, holm_p: float | None) -> list[str]:
    if not comparison.pairs:
        return [comparison.method, "0", "-", "-", "-", "-", "-"]
    low, high = comparison.interval
    return [
        comparison.method,
        str(len(comparison.pairs)),
        f"{comparison.mean_difference:+.2f}",
        f"[{low:+.2f}, {high:+.2f}]",
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
        f"## Paired differences versus {section.reference}",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|---|" + "---:|" * (len(HEADER) - 1),
    ]
    lines += [
        "| " + " | ".join(_overall_cells(c, section.holm[c.method])) + " |" for c in section.overall
    ]
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
        f"% Paired differences versus {section.reference}",
        r"\begin{tabular}{l r r r r r r}",
        r"\toprule",
        row(["Method", "Pairs", "Mean diff.", "95% CI", "Wilcoxon p", "Holm p", "W/T/L"]),
        r"\midrule",
        *(row(_overall_cells(c, section.holm[c.method])) for c in section.overall),
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
