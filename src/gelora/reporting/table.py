"""``gelora-table``: a sweep directory -> paper-style tables, a CSV of every run, and plots.

    gelora-table multirun_outputs/table_cpu/<sweep_id> [--out DIR]

Every job directory (one with ``.hydra/``) is one run. Its ``results.json`` gives the status,
method, task, seed, the task's primary test metric and the adapter parameters; a job without one
is ``missing`` (killed before it could write). Rows are methods (the ``method`` choice, else the
rank policy), columns tasks. A cell is ``mean +/- std (median)`` of the test score over the
completed seeds, the sample standard deviation (``n - 1``), the test split scored at the
best-validation checkpoint; a cell with failed or missing seeds says how many, and a cell without
a single completed seed says ``failed`` or ``missing``: nothing is dropped silently. The average
column is the mean of the row's task means, given only when every task has one.

Writes ``table.md``, ``table.tex``, ``runs.csv``, ``id_profiles.png``, ``rank_plans.png`` and
``score_vs_params.png`` into ``--out`` (default: the sweep directory).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from gelora.reporting.results import write_text_atomic

RULE = (
    "Cells: mean +/- sample std over seeds (median in brackets) of the test score at the "
    "best-validation checkpoint; n = completed seeds. Adapter parameters exclude the head."
)


@dataclass
class RunRecord:
    """One job of a sweep, as its directory records it."""

    run_dir: str
    status: str
    method: str
    task: str
    seed: int | None
    metric: str | None = None
    score: float | None = None
    adapter_params: int | None = None
    trainable_params: int | None = None
    total_s: float | None = None
    error: str | None = None
    block_ranks: list[int] = field(default_factory=list)
    intrinsic_dims: list[float] = field(default_factory=list)


def _job_identity(job_dir: Path) -> tuple[str, str, int | None]:
    """Method, task and seed from the job's composed config, for jobs without results."""
    config = OmegaConf.load(job_dir / ".hydra" / "config.yaml")
    choices = OmegaConf.load(job_dir / ".hydra" / "hydra.yaml").hydra.runtime.choices
    method = choices.get("method") or choices.get("rank_policy") or "?"
    return str(method), str(config.task.name), config.get("seed")


def read_run(job_dir: Path) -> RunRecord:
    method, task, seed = _job_identity(job_dir)
    path = job_dir / "results.json"
    if not path.exists():
        return RunRecord(str(job_dir), "missing", method, task, seed)
    try:
        data = json.loads(path.read_text())
    except ValueError as error:
        return RunRecord(str(job_dir), "unreadable", method, task, seed, error=str(error))
    metric = data.get("metric")
    score = data.get("metrics", {}).get(f"test/{metric}") if metric else None
    return RunRecord(
        run_dir=str(job_dir),
        status=data.get("status", "unknown"),
        method=data.get("variant") or method,
        task=data.get("task", task),
        seed=data.get("seed", seed),
        metric=metric,
        score=score,
        adapter_params=data.get("trainable_adapter_params"),
        trainable_params=data.get("trainable_params"),
        total_s=data.get("timings", {}).get("total_s"),
        error=data.get("error"),
        block_ranks=data.get("block_ranks") or [],
        intrinsic_dims=data.get("intrinsic_dims") or [],
    )


def job_overrides(job_dir: Path) -> list[str]:
    return [str(o) for o in OmegaConf.load(job_dir / ".hydra" / "overrides.yaml")]


def overrides_label(overrides: Sequence[str], common: set[str]) -> str:
    """A job's overrides without those every job shares and without ``task`` and ``seed``: a row
    of an ablation, whose rows are settings rather than methods."""
    items = [
        o
        for o in overrides
        if o not in common and not o.startswith(("task=", "seed=", "sweep_id="))
    ]
    return ",".join(items) or "(defaults)"


def load_runs(sweep_dir: Path, rows: str = "method") -> list[RunRecord]:
    """Every job under ``sweep_dir`` (directories holding ``.hydra/config.yaml``).

    ``rows``: ``method`` groups runs by method; ``overrides`` by their other overrides.
    """
    if rows not in ("method", "overrides"):
        raise ValueError(f"rows must be 'method' or 'overrides', got {rows!r}")
    jobs = sorted(p.parent.parent for p in sweep_dir.rglob(".hydra/config.yaml"))
    if not jobs:
        raise FileNotFoundError(f"no Hydra job directories (with .hydra/) under {sweep_dir}")
    runs = [read_run(job) for job in jobs]
    if rows == "overrides":
        overrides = {job: job_overrides(job) for job in jobs}
        common = set.intersection(*(set(o) for o in overrides.values()))
        for job, run in zip(jobs, runs, strict=True):
            run.method = overrides_label(overrides[job], common)
    return runs


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


def summarise(runs: Sequence[RunRecord]) -> tuple[list[str], list[str], dict, dict]:
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


def _task_metric(runs: Sequence[RunRecord], task: str) -> str:
    return next((r.metric for r in runs if r.task == task and r.metric), "?")


def _average(methods, tasks, cells) -> dict[str, str]:
    out = {}
    for method in methods:
        means = [cells[method, t].mean for t in tasks]
        out[method] = (
            "-" if any(m is None for m in means) else f"{100 * statistics.fmean(means):.2f}"
        )
    return out


def markdown_table(runs: Sequence[RunRecord]) -> str:
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


def latex_table(runs: Sequence[RunRecord]) -> str:
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


def write_csv(runs: Sequence[RunRecord], path: Path) -> None:
    fields = [
        f for f in RunRecord.__dataclass_fields__ if f not in ("block_ranks", "intrinsic_dims")
    ]
    lines: list[dict] = []
    for run in runs:
        row = {k: v for k, v in asdict(run).items() if k in fields}
        row["block_ranks"] = " ".join(map(str, run.block_ranks))
        lines.append(row)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*fields, "block_ranks"])
        writer.writeheader()
        writer.writerows(lines)
    tmp.replace(path)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gelora-table", description=__doc__.split("\n")[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--rows", choices=["method", "overrides"], default="method")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    out = args.out or args.sweep_dir
    out.mkdir(parents=True, exist_ok=True)
    runs = load_runs(args.sweep_dir, rows=args.rows)
    markdown = markdown_table(runs)
    write_text_atomic(out / "table.md", markdown)
    write_text_atomic(out / "table.tex", latex_table(runs))
    write_csv(runs, out / "runs.csv")
    if not args.no_plots:
        from gelora.reporting.sweep_plots import plot_sweep

        plot_sweep(runs, out)
    counts = {s: sum(r.status == s for r in runs) for s in dict.fromkeys(r.status for r in runs)}
    print(markdown)
    print(f"{len(runs)} runs: {counts}; written to {out}")


if __name__ == "__main__":
    main()
