"""Rendering a sweep: paper-style tables (markdown, LaTeX) and a CSV of every run.

Rows are methods (the ``method`` choice, else the rank policy), columns tasks. A cell is
``mean +/- std [median] n=k`` of the test score over the completed seeds (sample standard
deviation, ``n - 1``; the test split scored at the best-validation checkpoint), just
``score n=1`` for a single seed; a cell with failed or missing seeds says how many, and a cell
without a completed seed says ``failed`` or ``missing``. A column is one data set scored one
way (``sweep_runs.label_columns``): a user's data sets are named by their files, and runs of one
task on different test rows or with different metrics are separate columns, never one cell. The
average column is the mean of the row's column means, given only when every column has one and
no task was split by test rows (it would count twice). The caption states the LoRA scaling rule
the runs recorded, whether every run of a column was scored on the same test rows, which tasks
were split by test rows, and which jobs were skipped because a file could not be read. Names in
LaTeX go through ``latex_escape``. Paired comparisons are ``gelora.table.paired_tables``.
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from gelora.atomic import atomic_file
from gelora.table.paired import plural, sweep_direction
from gelora.table.sweep_runs import SkippedJob, SweepRun, row_set_splits

RULE = (
    "Cells: mean +/- sample std over seeds (median in brackets) of the test score at the "
    "best-validation checkpoint; n = completed seeds. Adapter parameters: of the tested weights "
    "(after AdaLoRA's pruning), the head excluded."
)

# The ten characters LaTeX reserves in text (Oetiker et al., "The Not So Short Introduction to
# LaTeX", section "Special Characters": # $ % ^ & _ { } ~ \), with the text-mode commands for them.
LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """``text`` as LaTeX prints it verbatim: each special character replaced in one pass, so
    the backslashes the replacements bring are not escaped again."""
    return "".join(LATEX_SPECIALS.get(char, char) for char in text)


def scaling_note(runs: Sequence[SweepRun]) -> str:
    """The LoRA scaling rule(s) the runs recorded: one for every row, else per method."""
    methods = list(dict.fromkeys(r.method for r in runs))
    by_method = {
        m: sorted({r.scaling for r in runs if r.method == m and r.scaling}) for m in methods
    }
    seen = {text for texts in by_method.values() for text in texts}
    if not seen:
        return "LoRA scaling: not recorded by these runs."
    if len(seen) == 1 and all(by_method.values()):
        return f"LoRA scaling: {seen.pop()} for every row."
    parts = [f"{m}: {', '.join(texts) or 'not recorded'}" for m, texts in by_method.items()]
    return "LoRA scaling per method: " + "; ".join(parts) + "."


def test_rows_note(runs: Sequence[SweepRun]) -> str:
    """Whether every completed run of a task was scored on the same test rows (by their
    sha256 fingerprint, ``RunRecord.eval_rows``), and which tasks were not."""
    done = [r for r in runs if r.status == "completed"]
    tasks = list(dict.fromkeys(r.task for r in done))
    differing = [
        f"{task} ({n} row sets)"
        for task in tasks
        if (n := len({r.test_rows for r in done if r.task == task and r.test_rows})) > 1
    ]
    bare = sum(r.test_rows is None for r in done)
    if not differing and not bare:
        return "Every completed run of a column was scored on the same test rows (sha256)."
    notes = []
    if differing:
        notes.append("Test rows differ within " + ", ".join(differing) + ".")
    if bare:
        notes.append(f"{bare} completed run(s) recorded no test-row fingerprint.")
    return " ".join(notes)


def row_sets_note(runs: Sequence[SweepRun]) -> str | None:
    """The tasks whose runs were split into columns by their test rows, or None."""
    splits = row_set_splits(runs)
    if not splits:
        return None
    named = ", ".join(f"{base} ({plural(len(sets), 'row set')})" for base, sets in splits.items())
    return (
        f"Columns split by test rows (runs scored on different test rows are never pooled): "
        f"{named}; no average, as it would count such a task more than once."
    )


def skipped_note(skipped: Sequence[SkippedJob]) -> str | None:
    """The jobs left out because a file could not be read, by file and why; None if none."""
    if not skipped:
        return None
    files = ", ".join(f"{job.shown} ({job.reason})" for job in skipped)
    jobs = plural(len(skipped), "job")
    return f"Skipped {jobs} whose files could not be read (in no cell): {files}."


def _percent(count: int, budget: int) -> str:
    return f"{100 * (count - budget) / budget:+.1f}%"


def budget_lines(runs: Sequence[SweepRun]) -> list[str]:
    """Per row (and budget) whose completed runs' final adapter parameters differ from the
    budget in parameters, the range and by how much: AdaLoRA prunes to a budget matched in rank
    units only, EVA's redistributed ranks may fall short of it. Rows without adapters (a head
    only) or without a budget (unbudgeted plans) have nothing to match."""
    lines = []
    done = [r for r in runs if r.status == "completed" and r.adapter_params and r.budget_params]
    for method in dict.fromkeys(r.method for r in done):
        for budget in dict.fromkeys(r.budget_params for r in done if r.method == method):
            counts = [r.adapter_params for r in done if r.method == method
                      and r.budget_params == budget]  # fmt: skip
            if all(count == budget for count in counts):
                continue
            low, high = min(counts), max(counts)
            span = f"{low:,}" if low == high else f"{low:,}-{high:,}"
            change = (
                _percent(low, budget)
                if low == high
                else f"{_percent(low, budget)} to {_percent(high, budget)}"
            )
            lines.append(f"{method}: final adapter parameters {span} (budget {budget:,}; {change})")
    return lines


def budget_note(runs: Sequence[SweepRun]) -> str | None:
    """The rows whose final adapter parameters differ from their budget, or None."""
    lines = budget_lines(runs)
    if not lines:
        return None
    return "Adapter parameters off the budget: " + "; ".join(lines) + "."


def stopping_note(runs: Sequence[SweepRun]) -> str | None:
    """The rows with runs that early stopping ended before their step cap, or None when no run
    records that it stopped early."""
    done = [r for r in runs if r.status == "completed"]
    stopped = {
        m: (sum(r.stopped_early is True for r in mine), len(mine))
        for m in dict.fromkeys(r.method for r in done)
        if (mine := [r for r in done if r.method == m])
    }
    parts = [f"{m} {k} of {n}" for m, (k, n) in stopped.items() if k]
    if not parts:
        return None
    return (
        "Stopped early (validation stopped improving for early_stopping.patience evaluations, "
        f"before the step cap): {', '.join(parts)} completed runs."
    )


def direction_note(runs: Sequence[SweepRun]) -> str:
    """How the cells read: scores x100, higher is better; or a loss as it is, lower is better."""
    direction = sweep_direction(runs)
    if direction.higher_is_better:
        return "Scores x100; higher is better."
    return f"Test {direction.metric} as it is (not x100); lower is better."


def unscored(runs: Sequence[SweepRun]) -> list[SweepRun]:
    """The completed runs whose record holds no test score (an empty ``metrics``): in no mean
    and no pair, and named, never dropped silently."""
    return [r for r in runs if r.status == "completed" and r.score is None]


def unscored_note(runs: Sequence[SweepRun]) -> str | None:
    """The completed runs without a test score, by method, task and seed; None if none."""
    bare = unscored(runs)
    if not bare:
        return None
    names = ", ".join(f"{r.method}/{r.task}/seed={r.seed}" for r in bare)
    return (
        f"{plural(len(bare), 'completed run')} recorded no test score and "
        f"{'is' if len(bare) == 1 else 'are'} in no cell's mean or pair: {names}."
    )


def caption(runs: Sequence[SweepRun], skipped: Sequence[SkippedJob] = ()) -> str:
    notes = [direction_note(runs), scaling_note(runs), test_rows_note(runs)]
    optional = (
        budget_note(runs), stopping_note(runs), row_sets_note(runs), unscored_note(runs),
        skipped_note(skipped),
    )  # fmt: skip
    notes += [note for note in optional if note]
    return " ".join([RULE, *notes])


@dataclass
class Cell:
    scores: list[float]
    n_runs: int
    n_failed: int
    n_missing: int
    scale: float = 100  # shown value = scale x score: points for a score, as-is for a loss
    n_unscored: int = 0  # completed runs whose record holds no test score

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.scores) if self.scores else None

    def text(self, latex: bool = False) -> str:
        pm = r"$\pm$" if latex else "+/-"
        problems = []
        if self.n_failed:
            problems.append(f"{self.n_failed} failed")
        if self.n_missing:
            problems.append(f"{self.n_missing} missing")
        if self.n_unscored:
            problems.append(f"{self.n_unscored} without a test score")
        if not self.scores:
            return ", ".join(problems) if problems else "-"
        if len(self.scores) == 1:  # no spread to show: "+/- 0.00" would claim one
            text = f"{self.scale * self.scores[0]:.2f} n=1"
        else:
            std, median = statistics.stdev(self.scores), statistics.median(self.scores)
            k = self.scale
            text = f"{k * self.mean:.2f} {pm} {k * std:.2f} [{k * median:.2f}] "
            text += f"n={len(self.scores)}"
        return text + (f" ({', '.join(problems)})" if problems else "")


def summarise(runs: Sequence[SweepRun]) -> tuple[list[str], list[str], dict, dict]:
    """Methods and tasks in first-seen order, cells by (method, task), params by method."""
    methods = list(dict.fromkeys(r.method for r in runs))
    tasks = list(dict.fromkeys(r.task for r in runs))
    scale = sweep_direction(runs).scale
    cells, params = {}, {}
    for method in methods:
        counts = [r.adapter_params for r in runs if r.method == method and r.adapter_params]
        params[method] = (min(counts), max(counts)) if counts else None
        for task in tasks:
            mine = [r for r in runs if r.method == method and r.task == task]
            cells[method, task] = Cell(
                scores=[r.score for r in mine if r.status == "completed" and r.score is not None],
                n_runs=len(mine),
                n_failed=sum(r.status not in ("completed", "missing") for r in mine),
                n_missing=sum(r.status == "missing" for r in mine),
                scale=scale,
                n_unscored=len(unscored([r for r in mine])),
            )
    return methods, tasks, cells, params


def _params_text(span: tuple[int, int] | None) -> str:
    if span is None:
        return "-"
    low, high = span
    return f"{low / 1e3:.1f}k" if low == high else f"{low / 1e3:.1f}k-{high / 1e3:.1f}k"


def _task_metric(runs: Sequence[SweepRun], task: str) -> str:
    return next((r.metric for r in runs if r.task == task and r.metric), "?")


def _average(methods, tasks, cells, split_by_rows: bool = False) -> dict[str, str]:
    """Each row's mean of its column means; ``-`` unless every column has one, and ``-`` for
    every row when a task was split into several columns by its test rows."""
    out = {}
    for method in methods:
        means = [cells[method, t].mean for t in tasks]
        scale = cells[method, tasks[0]].scale if tasks else 100
        out[method] = (
            "-"
            if split_by_rows or any(m is None for m in means)
            else f"{scale * statistics.fmean(means):.2f}"
        )
    return out


def markdown_table(runs: Sequence[SweepRun], skipped: Sequence[SkippedJob] = ()) -> str:
    methods, tasks, cells, params = summarise(runs)
    average = _average(methods, tasks, cells, bool(row_set_splits(runs)))
    head = [f"{t} ({_task_metric(runs, t)})" for t in tasks]
    lines = [
        "| method | adapter params | " + " | ".join(head) + " | average |",
        "|---|---:|" + "---:|" * len(tasks) + "---:|",
    ]
    for m in methods:
        row = [cells[m, t].text() for t in tasks]
        lines.append(
            f"| {m} | {_params_text(params[m])} | " + " | ".join(row) + f" | {average[m]} |"
        )
    return "\n".join(lines) + f"\n\n{caption(runs, skipped)}\n"


def latex_table(runs: Sequence[SweepRun], skipped: Sequence[SkippedJob] = ()) -> str:
    methods, tasks, cells, params = summarise(runs)
    average = _average(methods, tasks, cells, bool(row_set_splits(runs)))
    lines = [
        r"\begin{tabular}{l r " + "r " * len(tasks) + "r}",
        r"\toprule",
        "Method & Params & "
        + " & ".join(f"{latex_escape(t)} ({latex_escape(_task_metric(runs, t))})" for t in tasks)
        + r" & Avg. \\",
        r"\midrule",
    ]
    for m in methods:
        row = [cells[m, t].text(latex=True) for t in tasks]
        lines.append(
            f"{latex_escape(m)} & {_params_text(params[m])} & "
            + " & ".join(row)
            + f" & {average[m]} \\\\"
        )
    lines += [r"\bottomrule", r"\end{tabular}", f"% {caption(runs, skipped)}"]
    return "\n".join(lines) + "\n"


def write_csv(runs: Sequence[SweepRun], path: Path) -> None:
    fields = [
        f
        for f in SweepRun.__dataclass_fields__
        # metric_mode: read by the statistics, not a column (runs.csv as before it was recorded)
        if f
        not in (
            "block_ranks",
            "intrinsic_dims",
            "trained_ranks",
            "sensitivity",
            "plan_draws",
            "metric_mode",
        )
    ]
    lines: list[dict] = []
    for run in runs:
        row = {k: v for k, v in asdict(run).items() if k in fields}
        row["block_ranks"] = " ".join(map(str, run.block_ranks))
        lines.append(row)
    with atomic_file(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*fields, "block_ranks"])
        writer.writeheader()
        writer.writerows(lines)


def cost_markdown(runs: Sequence[SweepRun]) -> str:
    """Per row, the median over its completed runs that record it (``RunRecord.cost``) of the
    process's peak resident memory, CUDA's peak allocation and the training throughput; empty
    when no run records a cost (records before it)."""
    done = [r for r in runs if r.status == "completed" and r.peak_rss_mb is not None]
    if not done:
        return ""

    def median(values: list[float | None], digits: int) -> str:
        known = [v for v in values if v is not None]
        return f"{statistics.median(known):,.{digits}f}" if known else "-"

    lines = [
        "## What the runs cost",
        "",
        "| method | runs | peak memory (MB) | CUDA peak (MB) | samples/s | tokens/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for method in dict.fromkeys(r.method for r in done):
        mine = [r for r in done if r.method == method]
        lines.append(
            f"| {method} | {len(mine)} | {median([r.peak_rss_mb for r in mine], 0)} | "
            f"{median([r.cuda_peak_mb for r in mine], 0)} | "
            f"{median([r.samples_per_s for r in mine], 1)} | "
            f"{median([r.tokens_per_s for r in mine], 0)} |"
        )
    caption = (
        "Medians over each row's completed runs that record their cost (results.json `cost`): the "
        "process's peak resident memory, torch's peak CUDA allocation, and training samples and "
        "non-padding tokens per second (of the last process, in a resumed run). Runs that shared "
        "a machine with other work ran slower; compare rows of one sweep, not sweeps."
    )
    return "\n".join(lines) + f"\n\n{caption}\n"
