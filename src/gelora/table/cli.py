"""``gelora-table``: a sweep directory -> paper-style tables, paired comparisons, a CSV, plots.

    gelora-table multirun_outputs/table_cpu/<sweep_id> [--out DIR] [--versus lora]
        [--margin POINTS] [--differing-plans]
    gelora-table multirun_outputs/lr_sweep/<sweep_id> --select-lr lr_choice.yaml
    gelora-table multirun_outputs/table_cpu_budget/<sweep_id> --columns budget.rank

Every job directory (one with ``.hydra/``) is one run (``gelora.table.sweep_runs``); the
tables and CSV are ``gelora.table.tables``, the plots ``gelora.table.sweep_plots``.
Writes ``table.md``, ``table.tex``, ``runs.csv``, (with a paired section) ``paired.csv``,
``id_profiles.png``, ``rank_plans.png``, ``score_vs_params.png``, (when there are pairs)
``paired_differences.png``, (with placement pairs: ``placement_<row>.csv`` and)
``placement_effects.png`` and (with
``--columns``, e.g. ``budget.rank``) ``curve.png`` into ``--out``
(default: the sweep directory). ``table.md`` and ``table.tex`` end with the paired differences
of every method versus ``--versus`` (``gelora.table.paired``): the task-level interval, MDE
and verdict (Student's t over the task means; with ``--margin``, equivalence by two one-sided
tests), both bootstrap intervals and the noise floor; ``paired.csv`` holds the same rows.
``--differing-plans`` leaves out pairs trained on identical rank plans. ``--size-for-mde GOAL``
instead prints the tasks each row needs for a task-level MDE of at most GOAL at the spread of its
task means so far (``gelora.table.sizing``). ``--select-lr`` instead
chooses each (method, task)'s learning rate by validation score and writes it as YAML
(``gelora.table.lr_selection``).
A sweep directory that is missing or holds no job is one line on stderr and exit status 2.
A job one of whose files cannot be read (a broken ``.hydra/config.yaml``, a ``results.json`` that
is not a run record) is one warning line on stderr naming the file, and the others are tabled;
the caption says how many jobs were skipped and why. Runs of one task are never pooled across
data sets, metrics or test rows (``gelora.table.sweep_runs.label_columns``); a task split into
columns by its test rows is a warning line too.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from gelora.atomic import write_text_atomic
from gelora.table.lr_selection import (
    choose_lrs,
    grid_not_ready,
    lr_choice_yaml,
    selection_markdown,
)
from gelora.table.paired import EVERY_PAIR, PairingRules, plural, sweep_direction
from gelora.table.paired_tables import (
    PairedSection,
    paired_csv,
    paired_latex,
    paired_markdown,
    paired_section,
    refused_line,
)
from gelora.table.placement import (
    Placement,
    placement_effects,
    placement_markdown,
    placement_pairs,
)
from gelora.table.plan_stability import plan_stability_markdown
from gelora.table.request import TableRequest, read_request
from gelora.table.sizing import sizing_markdown
from gelora.table.sweep_runs import (
    SkippedJob,
    SweepRun,
    load_sweep,
    row_set_splits,
    split_by_column,
)
from gelora.table.tables import (
    cost_markdown,
    latex_table,
    markdown_table,
    unscored,
    write_csv,
)

USAGE_ERROR = 2  # argparse's exit status for a bad command line


def fail(message: str) -> NoReturn:
    """One line on stderr and exit status 2, as argparse does for a bad command line."""
    print(f"gelora-table: error: {message}", file=sys.stderr)
    raise SystemExit(USAGE_ERROR)


def warn(message: str) -> None:
    """One line on stderr; the table goes on."""
    print(f"gelora-table: warning: {message}", file=sys.stderr)


def _add_pairing_arguments(parser: argparse.ArgumentParser) -> None:
    """``--with`` (more sweeps in one table) and ``--placement`` (allocators against their own
    shuffles): how rows from several sweeps and controls are paired (issue 30)."""
    parser.add_argument(
        "--with",
        dest="with_dirs",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="another sweep folder whose runs join this table (repeatable), e.g. a committed "
        "sweep of the same setup whose lora runs new rows are read against; a (row, task, seed) "
        "in two folders is refused",
    )
    parser.add_argument(
        "--placement",
        action="append",
        default=None,
        metavar="ROW:CONTROL",
        help="an allocator row and its own shuffled control (repeatable): the row minus the "
        "control, same statistics, is the placement effect; default: pairs named by the rows "
        "(<row>_shuffled is <row>'s own shuffle; shuffled is gelora_budget's)",
    )


def _add_selection_arguments(parser: argparse.ArgumentParser) -> None:
    """``--select-lr`` and ``--shared-rate``: learning rates chosen on validation."""
    parser.add_argument(
        "--select-lr",
        type=Path,
        default=None,
        metavar="OUT.yaml",
        help="for a sweep over optimizer.lr: choose each (method, task)'s learning rate by "
        "validation score (never test), print every lr's score and write the choice as "
        "lr_choice.<method>.<task> to OUT.yaml (with --columns budget.rank: a rate per budget, "
        "lr_choice.<method>.<task>.rank_<r>); no tables or figures are written",
    )
    parser.add_argument(
        "--shared-rate",
        action="append",
        default=[],
        metavar="NAME=ROW,ROW",
        help="with --select-lr: also choose one rate for several rows together, on the mean "
        "validation score of all their runs, written as lr_choice.NAME.<task> (an experiment "
        "trains the rows at it with lr_source.<row>: NAME); repeatable",
    )


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gelora-table", description=__doc__.split("\n")[0].replace("``", "")
    )
    parser.add_argument(
        "sweep_dir",
        type=Path,
        help="a sweep's output folder (multirun_outputs/<experiment>/<sweep_id>): every folder "
        "under it holding .hydra/ is one job",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for table.md, table.tex, runs.csv and the figures (default: SWEEP_DIR)",
    )
    parser.add_argument(
        "--rows",
        choices=["method", "overrides"],
        default="method",
        help="table rows: the method config (default), or each job's overrides other than "
        "task and seed (ablations)",
    )
    parser.add_argument(
        "--columns",
        default=None,
        metavar="KEY",
        help="split each task's column by this config key (e.g. budget.rank for a budget curve): "
        "cells, and the (task, seed) pairs, are per task and value, and curve.png plots the "
        "score against adapter parameters with the paired difference at each value",
    )
    parser.add_argument(
        "--no-plots", action="store_true", help="write the tables and CSV only, no figures"
    )
    parser.add_argument(
        "--wandb",
        action="store_true",
        help="also log the tables, CSVs and figures written as one wandb run (job type table) "
        "in the group of the sweep's jobs, offline unless WANDB_MODE says otherwise, under "
        "OUT/wandb/ (docs/dashboards.md)",
    )
    parser.add_argument(
        "--versus",
        default=None,
        metavar="METHOD",
        help="reference method of the paired differences (default: lora); every other method "
        "is paired with it on (task, seed) and identical test rows",
    )
    _add_pairing_arguments(parser)
    parser.add_argument(
        "--margin",
        type=float,
        default=None,
        metavar="M",
        help="equivalence margin of the paired differences, in their unit (points for a score): "
        "a row whose 90%% interval lies inside [-M, +M] is called equivalent within +/-M "
        "(two one-sided tests at alpha 0.05)",
    )
    parser.add_argument(
        "--differing-plans",
        action="store_true",
        help="leave out of the paired differences the pairs whose two runs trained identical "
        "rank plans (equal ranks per matrix); the caption says how many per row",
    )
    _add_selection_arguments(parser)
    parser.add_argument(
        "--size-for-mde",
        type=float,
        default=None,
        metavar="GOAL",
        help="size a sweep from its first runs instead of tabling it: for each row paired with "
        "--versus, print the tasks and pairs so far, the spread of the task means (within- and "
        "between-task parts), the task-level MDE now and the tasks a task-level MDE of at most "
        "GOAL needs, at these seeds and with unlimited seeds; no mean, interval or score is "
        "printed and no file is written (an internal pilot reads the spread, never the effect)",
    )
    return parser


def _load(sweep_dir: Path, rows: str) -> tuple[list[SweepRun], list[SkippedJob]]:
    if not sweep_dir.exists():
        fail(f"sweep directory {sweep_dir} does not exist")
    if not sweep_dir.is_dir():
        fail(f"sweep directory {sweep_dir} is not a directory")
    try:
        sweep = load_sweep(sweep_dir, rows=rows)
    except FileNotFoundError as error:  # no job directory under it
        fail(str(error))
    for job in sweep.skipped:
        warn(job.warning())
    if not sweep.runs:
        fail(f"no job under {sweep_dir} could be read ({len(sweep.skipped)} skipped)")
    for run in unscored(sweep.runs):
        warn(
            f"{run.run_dir}/results.json says completed but holds no test score: in no cell's "
            "mean or pair"
        )
    for base, sets in row_set_splits(sweep.runs).items():
        counts = "; ".join(f"{text}: {plural(n, 'run')}" for text, n in sets.items())
        warn(
            f"{base} was scored on {len(sets)} different test-row sets ({counts}): one column each"
        )
    try:  # cells, means, lr choice and wins all read the metric's direction
        sweep_direction(sweep.runs)
    except ValueError as error:
        fail(str(error))
    return sweep.runs, sweep.skipped


def _refuse_duplicate_jobs(
    runs: Sequence[SweepRun], sweep: Path, more_runs: Sequence[SweepRun], more: Path
) -> None:
    """One line when a ``--with`` folder holds a job the table already has: the same job folder
    (the same overrides: row, task, seed), relative to each sweep folder."""

    def jobs(of: Sequence[SweepRun], root: Path) -> set[str]:
        return {Path(r.run_dir).resolve().relative_to(root.resolve()).as_posix() for r in of}

    both = sorted(jobs(runs, sweep) & jobs(more_runs, more))
    if both:
        fail(f"job {both[0]} is in two sweep folders: {sweep} and {more}")


def parse_shared_rates(specs: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """``--shared-rate NAME=ROW,ROW`` (repeatable) as ``{NAME: (ROW, ROW)}``; one line on a bad
    one."""
    shared = {}
    for spec in specs:
        name, equals, rows = spec.partition("=")
        members = tuple(r for r in rows.split(",") if r)
        if not equals or not name or len(members) < 2:
            fail(f"--shared-rate {spec!r}: give NAME=ROW,ROW (two rows or more), e.g. "
                 "shared=lora,gelora_budget")  # fmt: skip
        shared[name] = members
    return shared


def select_lr(runs: Sequence[SweepRun], request: TableRequest) -> None:
    """``--select-lr``: each (row, task)'s rate chosen on validation, printed and written as
    YAML, or one line why not."""
    sweep_dir, out = request.sweep_dir, request.select_lr
    shared = parse_shared_rates(request.shared_rate)
    try:
        choices = choose_lrs(runs, request.columns, shared)
    except ValueError as error:
        fail(str(error))
    if (why := grid_not_ready(choices)) is not None:
        fail(why)
    single = [f"{c.method}/{c.task}" for c in choices if len(c.validation) < 2]
    if single:
        fail(
            f"one learning rate only in {', '.join(single)}: --select-lr chooses among rates "
            "scored on validation, and a single rate is no choice; run at least two there"
        )
    if not any(c.chosen is not None for c in choices):
        fail(f"no completed run under {sweep_dir} records a learning rate and validation score")
    print(selection_markdown(choices, runs))
    for choice in choices:
        if choice.chosen is None:
            print(f"no choice for {choice.method}/{choice.task}: no completed run with a score")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, lr_choice_yaml(choices, sweep_dir))
    print(f"learning rates written to {out}")


def size_for_mde(runs: Sequence[SweepRun], request: TableRequest) -> None:
    """``--size-for-mde``: the sizing table (``gelora.table.sizing``), or one line why not."""
    try:
        print(sizing_markdown(runs, request.versus, request.size_for_mde, request.rules))
    except ValueError as error:
        fail(str(error))


def paired_texts(section: PairedSection | None, why_none: str) -> tuple[str, str, str | None]:
    """The paired section in markdown and LaTeX, or one line each saying why there is none;
    and the line naming the pairs refused for different test rows, if any."""
    if section is None:
        return why_none + "\n", f"% {why_none}\n", None
    return paired_markdown(section), paired_latex(section), refused_line(section.refused)


# Outputs written only when the table has that part: a re-run into the same --out removes the
# ones it did not write, so that no file there describes an earlier table (plots only when this
# run draws plots).
PART_DATA = ("paired.csv", "paired_same_rate.csv", "placement_*.csv")
PART_PLOTS = ("paired_differences.png", "placement_effects.png", "curve.png")


def remove_stale_outputs(out: Path, written: set[str], *, plots: bool) -> list[str]:
    """Delete the part files (``PART_DATA``, and ``PART_PLOTS`` when ``plots``) in ``out`` that
    this run did not write; their names, sorted."""
    patterns = PART_DATA + (PART_PLOTS if plots else ())
    stale = sorted(
        {p.name for pattern in patterns for p in out.glob(pattern) if p.is_file()} - written
    )
    for name in stale:
        (out / name).unlink()
    return stale


def paired_or_reason(
    runs: Sequence[SweepRun],
    reference: str,
    rules: PairingRules = EVERY_PAIR,
) -> tuple[PairedSection | None, str]:
    """The paired section, or None and one line saying why there is none."""
    if not any(r.method == reference for r in runs):
        return None, f"No paired differences: reference method {reference!r} is not in this sweep."
    try:
        return paired_section(runs, reference, rules), ""
    except ValueError as error:  # a metric of unknown direction
        return None, f"No paired differences: {error}."


def same_rate_section(
    runs: Sequence[SweepRun],
    reference: str,
    tuned: PairedSection | None,
    rules: PairingRules = EVERY_PAIR,
) -> PairedSection | None:
    """Every row against ``reference`` on the pairs trained at one learning rate (issue 42),
    or None when there is no tuned section or the same-rate pairs are exactly its pairs (then
    every pair already shares a rate and the section would repeat it)."""
    if tuned is None:
        return None
    section = paired_section(runs, reference, rules, same_rate=True)
    if [len(c.pairs) for c in section.overall] == [len(c.pairs) for c in tuned.overall]:
        return None
    return section


def _placements(runs: Sequence[SweepRun], request: TableRequest) -> list[Placement]:
    """The placement sections (``gelora.table.placement``); a bad pair is one line."""
    try:
        given = None if request.placement is None else list(request.placement)
        pairs = placement_pairs(list(dict.fromkeys(r.method for r in runs)), given)
        return placement_effects(runs, pairs, request.rules)
    except ValueError as error:
        fail(str(error))


def draw_figures(
    runs: Sequence[SweepRun],
    section: PairedSection | None,
    placements: Sequence[Placement],
    columns: str | None,
    out: Path,
) -> set[str]:
    """The sweep's figures into ``out``; the names of the part figures drawn (``PART_PLOTS``)."""
    from gelora.table.sweep_plots import (
        plot_curve,
        plot_paired_differences,
        plot_placement_effects,
        plot_sweep,
    )

    written: set[str] = set()
    plot_sweep(runs, out)
    if section is not None and any(c.pairs for c in section.overall):
        plot_paired_differences(section, out / "paired_differences.png")
        written.add("paired_differences.png")
    if any(c.pairs for p in placements for c in p.section.overall):
        plot_placement_effects(placements, out / "placement_effects.png")
        written.add("placement_effects.png")
    if columns is not None:
        plot_curve(runs, section, columns, out / "curve.png")
        written.add("curve.png")
    return written


def load_runs(request: TableRequest) -> tuple[list[SweepRun], list[SkippedJob]]:
    """The runs of the sweep folder and of each ``--with`` folder (a job in two of them is one
    line), split by ``--columns``; and the jobs skipped for unreadable files."""
    runs, skipped = _load(request.sweep_dir, request.rows)
    loaded = [(request.sweep_dir, runs)]
    for more in request.with_dirs:
        more_runs, more_skipped = _load(more, request.rows)
        for sweep, its_runs in loaded:
            _refuse_duplicate_jobs(its_runs, sweep, more_runs, more)
        loaded.append((more, more_runs))
        runs, skipped = [*runs, *more_runs], [*skipped, *more_skipped]
    if request.columns is not None:
        try:
            runs = split_by_column(runs, request.columns)
        except ValueError as error:
            fail(str(error))
    return runs, skipped


def write_table(
    runs: Sequence[SweepRun], skipped: Sequence[SkippedJob], request: TableRequest
) -> None:
    """The tables, CSVs and figures into ``request.out_dir``, and the table on stdout."""
    # a bad pair stops here, before any file is written
    placements = _placements(runs, request)
    out, rules = request.out_dir, request.rules
    out.mkdir(parents=True, exist_ok=True)
    section, why_none = paired_or_reason(runs, request.versus, rules)
    paired_md, paired_tex, refused = paired_texts(section, why_none)
    markdown = markdown_table(runs, skipped) + "\n" + paired_md
    latex = latex_table(runs, skipped) + "\n" + paired_tex
    same_rate = same_rate_section(runs, request.versus, section, rules)
    if same_rate is not None:
        markdown += "\n" + paired_markdown(same_rate)
        latex += "\n" + paired_latex(same_rate)
        paired_csv(same_rate, out / "paired_same_rate.csv")
    plans = plan_stability_markdown(runs, request.versus)
    markdown += "\n" + plans if plans else ""
    cost = cost_markdown(runs)
    markdown += "\n" + cost if cost else ""
    if placements:
        markdown += "\n" + placement_markdown(placements)
        latex += "".join("\n" + paired_latex(placement.section) for placement in placements)
        for placement in placements:
            paired_csv(placement.section, out / f"placement_{placement.row}.csv")
    written = {f"placement_{placement.row}.csv" for placement in placements}
    written |= {"paired_same_rate.csv"} if same_rate is not None else set()
    write_text_atomic(out / "table.md", markdown)
    write_text_atomic(out / "table.tex", latex)
    write_csv(runs, out / "runs.csv")
    if section is not None:
        paired_csv(section, out / "paired.csv")
        written.add("paired.csv")
    if request.plots:
        written |= draw_figures(runs, section, placements, request.columns, out)
    removed = remove_stale_outputs(out, written, plots=request.plots)
    print(markdown)
    print_outcome(runs, skipped, out, refused, removed)
    if request.wandb:  # the table beside the jobs' runs, in their group (docs/dashboards.md)
        from gelora.table.wandb_log import log_table_run

        folder = log_table_run(request.sweep_dir, out, figures=request.plots)
        print(f"wandb run: {folder}" if folder else "wandb: disabled (WANDB_MODE); nothing logged")


def print_outcome(
    runs: Sequence[SweepRun],
    skipped: Sequence[SkippedJob],
    out: Path,
    refused: str | None,
    removed: Sequence[str],
) -> None:
    """The lines after the table: pairs refused, the runs by state, what was removed."""
    counts = {s: sum(r.status == s for r in runs) for s in dict.fromkeys(r.status for r in runs)}
    if refused:
        print(refused)
    skipped_text = f"; {plural(len(skipped), 'job')} skipped (unreadable files)" if skipped else ""
    bare = len(unscored(runs))
    bare_text = f"; {bare} completed without a test score (in no cell)" if bare else ""
    print(f"{len(runs)} runs: {counts}{bare_text}{skipped_text}; written to {out}")
    if removed:
        print(f"removed from {out}, as this table has no such part: {', '.join(removed)}")


def main(argv: Sequence[str] | None = None) -> None:
    try:
        request = read_request(argument_parser().parse_args(argv))
    except ValueError as error:
        fail(str(error))
    runs, skipped = load_runs(request)
    if request.select_lr is not None:
        select_lr(runs, request)
        return
    if request.shared_rate:
        fail("--shared-rate goes with --select-lr (it pools rows to choose one rate)")
    methods = list(dict.fromkeys(r.method for r in runs))
    if request.versus_given and request.versus not in methods:
        rows = ", ".join(methods)
        fail(f"--versus {request.versus}: no such row in this sweep; its rows: {rows}")
    if request.size_for_mde is not None:
        size_for_mde(runs, request)
        return
    write_table(runs, skipped, request)


if __name__ == "__main__":
    main()
