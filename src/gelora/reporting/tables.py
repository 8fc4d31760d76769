"""Rendering a sweep: paper-style tables (markdown, LaTeX) and a CSV of every run.

Rows are methods (the ``method`` choice, else the rank policy), columns tasks. A cell is
``mean +/- std [median] n=k`` of the test score over the completed seeds (sample standard
deviation, ``n - 1``; the test split scored at the best-validation checkpoint); a cell with
failed or missing seeds says how many, and a cell without a completed seed says ``failed`` or
``missing``. The average column is the mean of the row's task means, given only when every task
has one.
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from gelora.atomic import atomic_file
from gelora.reporting.sweep_runs import SweepRun

RULE = (
    "Cells: mean +/- sample std over seeds (median in brackets) of the test score at the "
    "best-validation checkpoint; n = completed seeds. Adapter parameters exclude the head."
)


@dataclass
class Cell:
    scores: list[float]
    n_runs: int
    n_failed: int
    n_missing: int

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
        if not self.scores:
            return ", ".join(problems) if problems else "-"
        std = statistics.stdev(self.scores) if len(self.scores) > 1 else 0.0
        median = statistics.median(self.scores)
        text = (
            f"{100 * self.mean:.2f} {pm} {100 * std:.2f} [{100 * median:.2f}] n={len(self.scores)}"
        )
        return text + (f" ({', '.join(problems)})" if problems else "")


def summarise(runs: Sequence[SweepRun]) -> tuple[list[str], list[str], dict, dict]:
    """Methods and tasks in first-seen order, cells by (method, task), params by method."""
    methods = list(dict.fromkeys(r.method for r in runs))
    tasks = list(dict.fromkeys(r.task for r in runs))
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
            )
    return methods, tasks, cells, params


def _params_text(span: tuple[int, int] | None) -> str:
    if span is None:
        return "-"
    low, high = span
    return f"{low / 1e3:.1f}k" if low == high else f"{low / 1e3:.1f}k-{high / 1e3:.1f}k"


def _task_metric(runs: Sequence[SweepRun], task: str) -> str:
    return next((r.metric for r in runs if r.task == task and r.metric), "?")


def _average(methods, tasks, cells) -> dict[str, str]:
    out = {}
    for method in methods:
        means = [cells[method, t].mean for t in tasks]
        out[method] = (
            "-" if any(m is None for m in means) else f"{100 * statistics.fmean(means):.2f}"
        )
    return out


def markdown_table(runs: Sequence[SweepRun]) -> str:
    methods, tasks, cells, params = summarise(runs)
    average = _average(methods, tasks, cells)
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
    return "\n".join(lines) + f"\n\n{RULE}\n"


def latex_table(runs: Sequence[SweepRun]) -> str:
    methods, tasks, cells, params = summarise(runs)
    average = _average(methods, tasks, cells)
    escape = lambda s: s.replace("_", r"\_")  # noqa: E731
    lines = [
        r"\begin{tabular}{l r " + "r " * len(tasks) + "r}",
        r"\toprule",
        "Method & Params & "
        + " & ".join(f"{escape(t)} ({escape(_task_metric(runs, t))})" for t in tasks)
        + r" & Avg. \\",
        r"\midrule",
    ]
    for m in methods:
        row = [cells[m, t].text(latex=True) for t in tasks]
        lines.append(
            f"{escape(m)} & {_params_text(params[m])} & "
            + " & ".join(row)
            + f" & {average[m]} \\\\"
        )
    lines += [r"\bottomrule", r"\end{tabular}", f"% {RULE}"]
    return "\n".join(lines) + "\n"


def write_csv(runs: Sequence[SweepRun], path: Path) -> None:
    fields = [
        f for f in SweepRun.__dataclass_fields__ if f not in ("block_ranks", "intrinsic_dims")
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
