"""Learning-rate selection from a sweep over ``optimizer.lr`` (``gelora-table --select-lr``).

For each (method, task) the learning rate with the best validation score is chosen
(``SweepRun.val_score``: ``val/<metric>_best``, the score of the checkpoint the test split is
scored at, else the last ``val/<metric>``; the mean over completed seeds when there are several);
a tie goes to the smaller learning rate. Test scores are never read: a choice made on the test
split makes that split's score an optimistically biased estimate (Cawley and Talbot, "On
over-fitting in model selection and subsequent selection bias in performance evaluation",
JMLR 11, 2010). "Best" follows the metric's direction (``gelora.table.paired.Direction``):
the highest score, or the lowest loss; a metric of unknown direction stops the selection.

The choice is written as YAML an experiment config reads with
``${oc.select:lr_choice.<method>.<task>,<default>}``, ``<task>`` the task config's name
(``SweepRun.task_name``). Where one name holds several table columns (two of a user's data sets,
both ``from_files``; one task on two test-row sets) that key could hold only one of their rates,
so the selection stops and says so.

A rate shared by several rows (``gelora-table --select-lr OUT --shared-rate NAME=ROW,ROW``):
the rows' runs are pooled under ``NAME`` and its rate is the one with the best mean validation
score over all of them (each row's seeds alike), written as ``lr_choice.NAME.<task>`` beside each
row's own choice; an experiment trains the rows at it through ``lr_source.<row>: NAME``. An
allocator and uniform LoRA at one rate differ only in their plans, so the rate choice's own noise
does not enter their paired difference; each row's own choice shows whether the shared rate is
what the row would have picked alone. Every chosen cell says its margin: how far its validation
score is ahead of the next rate's (a small margin is a choice the seeds' noise could flip).

A grid that also sweeps a setting, selected with ``gelora-table --columns budget.rank
--select-lr``, is a grid per value: each budget gets its own rate, written one level deeper,
``lr_choice.<method>.<task>.rank_<r>`` (``column_key``), for a budget curve that trains each
budget at its own rate (conf/experiment/budget_curve_lr.yaml, budget_curve.yaml). A rate chosen
at either edge of its grid (the largest or the smallest rate run) is named below the table:
a rate past it might score higher (``experiments/extend_lr_grid.py`` prints the next step).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gelora.table.paired import POINTS, Direction, sweep_direction
from gelora.table.sweep_runs import SweepRun

PLAIN_YAML_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "y", "n", "null"}  # keys YAML retypes


@dataclass(frozen=True)
class LrChoice:
    """One (method, task): the validation score of every learning rate tried, and the choice."""

    method: str
    task: str  # the table column (``SweepRun.task``)
    validation: dict[float, float | None]  # lr -> mean validation score; None: none completed
    seeds: dict[float, int]  # lr -> completed seeds with a validation score
    chosen: float | None
    unfinished: int = 0  # runs still without a record (running, or killed): choose after them
    unscored: int = 0  # completed runs whose record has no validation score: rerun them
    task_name: str | None = None  # the task config's name: the key in lr_choice; ``task`` if None
    column: str | None = None  # with ``columns`` (a grid per budget): the value, as text
    column_key: str | None = None  # its key under the task in lr_choice: ``rank_2``

    @property
    def key(self) -> str:
        return self.task_name or self.task

    @property
    def path(self) -> str:
        """Where the choice sits in the YAML: ``lr_choice.<method>.<task>[.<column key>]``."""
        tail = f".{self.column_key}" if self.column_key is not None else ""
        return f"lr_choice.{self.method}.{self.key}{tail}"


def column_key(columns: str, value: str) -> str:
    """The key a choice per value of ``columns`` sits under, below its task: the key's last part
    and the value, ``budget.rank`` = 2 -> ``rank_2``. An experiment config reads it as
    ``lr_choice_key: rank_${budget.rank}`` and ``${lr_choice.<method>.<task>.${lr_choice_key}}``
    (conf/experiment/budget_curve.yaml)."""
    key = f"{columns.rsplit('.', 1)[-1]}_{value}"
    if not PLAIN_YAML_KEY.fullmatch(key):
        raise ValueError(
            f"{columns}={value} gives the lr_choice key {key!r}, which an interpolation cannot "
            "name; select learning rates per value of a key with plain values (budget.rank)"
        )
    return key


def _scored(choice: LrChoice) -> list[float]:
    return [lr for lr, score in choice.validation.items() if score is not None]


def at_top_of_grid(choice: LrChoice) -> bool:
    """The chosen rate is the largest of two or more scored rates: a larger one might do better."""
    scored = _scored(choice)
    return choice.chosen is not None and len(scored) > 1 and choice.chosen == max(scored)


def at_bottom_of_grid(choice: LrChoice) -> bool:
    """The chosen rate is the smallest of two or more scored rates: a smaller one might do
    better."""
    scored = _scored(choice)
    return choice.chosen is not None and len(scored) > 1 and choice.chosen == min(scored)


def grid_edge(choice: LrChoice) -> str | None:
    """``"top"`` or ``"bottom"`` when the chosen rate is at that edge of the rates scored, else
    None (inside the grid, or a single rate: no edge to speak of)."""
    if at_top_of_grid(choice):
        return "top"
    if at_bottom_of_grid(choice):
        return "bottom"
    return None


EDGE_WORDS = {"top": "larger", "bottom": "smaller"}  # grid_edge's edges, and the rate beyond


def grid_edge_line(choices: Sequence[LrChoice], edge: str) -> str | None:
    """One line naming the (method, task) cells whose best rate is at ``edge`` (``top``: the
    grid's largest; ``bottom``: its smallest) of the rates scored; ``None`` when there are none."""
    cells = [f"{c.method}/{c.task} ({_lr_text(c.chosen)})" for c in choices if grid_edge(c) == edge]
    if not cells:
        return None
    return (
        f"At the {edge} of the grid (a {EDGE_WORDS[edge]} rate might score higher; extend the "
        f"grid there before the table runs): {', '.join(cells)}."
    )


def grid_not_ready(choices: Sequence[LrChoice]) -> str | None:
    """Why no rate may be chosen yet, or None: runs still without a result (a rate chosen
    before its rivals finish would be chosen by the clock), or completed runs without a
    validation score (their rate would lose by default; rerun them)."""
    unfinished = [f"{c.method}/{c.task} ({c.unfinished})" for c in choices if c.unfinished]
    if unfinished:
        return (
            f"the learning-rate grid is not finished: unfinished runs in {', '.join(unfinished)}, "
            "without a result yet; finish (or resume) the sweep first"
        )
    unscored = [f"{c.method}/{c.task} ({c.unscored})" for c in choices if c.unscored]
    if unscored:
        return (
            f"completed runs without a validation score in {', '.join(unscored)} (resumed after "
            "their last step by a gelora before the tested checkpoint's score was recorded); "
            "rerun them from scratch (delete their folders) first"
        )
    return None


def choose_lr(validation: dict[float, float | None], direction: Direction = POINTS) -> float | None:
    """The learning rate with the best validation score (highest, or lowest for a loss), the
    smaller one on a tie."""
    scored = [(direction.sign * score, lr) for lr, score in validation.items() if score is not None]
    return max(scored, key=lambda item: (item[0], -item[1]))[1] if scored else None


def pool_shared(
    runs: Sequence[SweepRun], shared: dict[str, tuple[str, ...]] | None
) -> list[SweepRun]:
    """``runs`` plus, for each ``NAME: rows``, a copy of those rows' runs under the method
    ``NAME`` (their rate chosen on the mean of all of them: ``--shared-rate``).

    Raises:
        ValueError: a name that is already a row, or a row the runs do not hold.
    """
    from dataclasses import replace

    pooled = list(runs)
    methods = {r.method for r in runs}
    for name, rows in (shared or {}).items():
        if name in methods:
            raise ValueError(
                f"--shared-rate {name}: that name is a row of the sweep; choose another"
            )
        missing = [row for row in rows if row not in methods]
        if missing:
            raise ValueError(f"--shared-rate {name}: no row {missing[0]!r} in this sweep")
        pooled += [replace(r, method=name) for r in runs if r.method in rows]
    return pooled


def margin(choice: LrChoice, direction: Direction = POINTS) -> float | None:
    """How far the chosen rate's validation score is ahead of the next best rate's, in the
    metric's units x scale (points for a score); None with fewer than two scored rates."""
    scored = sorted(
        (direction.sign * v for v in choice.validation.values() if v is not None), reverse=True
    )
    return direction.scale * (scored[0] - scored[1]) if len(scored) > 1 else None


def choose_lrs(
    runs: Sequence[SweepRun],
    columns: str | None = None,
    shared: dict[str, tuple[str, ...]] | None = None,
) -> list[LrChoice]:
    """A choice per (method, task) with at least one run that records its learning rate.

    ``columns``: the key the runs' columns were split by (``sweep_runs.split_by_column``, e.g.
    ``budget.rank``): each value is its own grid, and its choice is keyed by the value below the
    task (``lr_choice.<method>.<task>.rank_<r>``, ``column_key``), so that a budget curve runs
    each budget at its own rate.

    ``ValueError`` when a task config's name (the key in ``lr_choice``) holds several columns
    (other than the values of ``columns``)."""
    direction = sweep_direction(runs)
    _check_one_run_per_seed([r for r in runs if r.lr is not None])  # before any pooling
    with_lr = [r for r in pool_shared(runs, shared) if r.lr is not None]
    choices = []
    for method in dict.fromkeys(r.method for r in with_lr):
        for task in dict.fromkeys(r.task for r in with_lr):
            mine = [r for r in with_lr if r.method == method and r.task == task]
            if not mine:
                continue
            validation, seeds = {}, {}
            for lr in sorted({r.lr for r in mine}):
                scores = [
                    r.val_score
                    for r in mine
                    if r.lr == lr and r.status == "completed" and r.val_score is not None
                ]
                validation[lr] = statistics.fmean(scores) if scores else None
                seeds[lr] = len(scores)
            unfinished = sum(r.status in ("missing", "running") for r in mine)
            unscored = sum(r.status == "completed" and r.val_score is None for r in mine)
            chosen = choose_lr(validation, direction)
            value = mine[0].column if columns is not None else None
            choice = LrChoice(
                method, task, validation, seeds, chosen, unfinished, unscored,
                task_name=mine[0].task_name,
                column=value,
                column_key=column_key(columns, value) if columns and value is not None else None,
            )  # fmt: skip
            choices.append(choice)
    _check_one_column_per_key(choices)
    return choices


def _check_one_run_per_seed(runs: Sequence[SweepRun]) -> None:
    """Two runs of one (method, column, rate, seed) differ in a setting the selection does not
    see (a grid that also sweeps ``budget.rank``): their mean would pool two settings' scores."""
    seen: dict[tuple, int] = {}
    for run in runs:
        if run.seed is not None:
            key = (run.method, run.task, run.lr, run.seed)
            seen[key] = seen.get(key, 0) + 1
    doubled = [(m, t, lr, seed, n) for (m, t, lr, seed), n in seen.items() if n > 1]
    if doubled:
        method, task, lr, seed, n = doubled[0]
        raise ValueError(
            f"{n} runs of {method}/{task} at learning rate {_lr_text(lr)} have seed {seed}: "
            "they differ in another setting the grid sweeps (a budget?), and one rate would "
            "pool them; select a rate per value with --columns KEY (e.g. budget.rank)"
        )


def _check_one_column_per_key(choices: Sequence[LrChoice]) -> None:
    columns: dict[str, list[str]] = {}
    for choice in choices:
        columns.setdefault(choice.path, []).append(choice.task)
    for path, tasks in columns.items():
        if len(tasks) > 1:
            raise ValueError(
                f"{path} would hold one rate for {len(tasks)} columns "
                f"({', '.join(tasks)}); select learning rates in separate sweeps"
            )


def _lr_text(lr: float) -> str:
    return f"{lr:g}"


def _cell(choice: LrChoice | None, direction: Direction = POINTS) -> str:
    if choice is None:
        return "-"
    parts = []
    for lr, score in choice.validation.items():
        shown = f"{direction.scale * score:.2f}" if score is not None else "no score"
        text = f"{_lr_text(lr)}: {shown}"
        parts.append(f"**{text}**" if lr == choice.chosen else text)
    ahead = margin(choice, direction)
    return ", ".join(parts) + (f" (margin {ahead:.2f})" if ahead is not None else "")


def selection_markdown(choices: Sequence[LrChoice], runs: Sequence[SweepRun]) -> str:
    """Method x task; each cell every learning rate's validation score, the chosen one bold."""
    methods = list(dict.fromkeys(c.method for c in choices))
    tasks = list(dict.fromkeys(c.task for c in choices))
    by_key = {(c.method, c.task): c for c in choices}
    metric = {t: next((r.metric for r in runs if r.task == t and r.metric), "?") for t in tasks}
    lines = [
        "| method | " + " | ".join(f"{t} (val {metric[t]})" for t in tasks) + " |",
        "|---|" + "---|" * len(tasks),
    ]
    direction = sweep_direction(runs)
    for method in methods:
        cells = [_cell(by_key.get((method, t)), direction) for t in tasks]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    most_seeds = max((n for c in choices for n in c.seeds.values()), default=0)
    over = f"mean over up to {most_seeds} seeds" if most_seeds > 1 else "one seed"
    shown, best = (
        ("Validation score x100", "highest")
        if direction.higher_is_better
        else (f"Validation {direction.metric}", "lowest")
    )
    rule = (
        f"{shown} (val/<metric>_best, {over}) per learning rate; bold: chosen "
        f"({best} validation score, ties to the smaller learning rate); margin: how far it is "
        "ahead of the next rate. Test scores not read."
    )
    edges = [line for line in (grid_edge_line(choices, e) for e in EDGE_WORDS) if line]
    return "\n".join(lines) + f"\n\n{rule}\n" + "".join(f"\n{line}\n" for line in edges)


def _yaml_key(name: str) -> str:
    plain = PLAIN_YAML_KEY.fullmatch(name) and name.lower() not in YAML_WORDS
    return name if plain else '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def yaml_float(value: float) -> str:
    """A float YAML (and OmegaConf) reads back as the same float: positional, shortest round-trip
    digits, always with a decimal point (``0.0003``, ``1.0``; never ``3e-4``, a string in YAML
    1.1)."""
    return np.format_float_positional(value, unique=True, trim="0")


def lr_choice_yaml(choices: Sequence[LrChoice], sweep_dir: Path | str) -> str:
    header = (
        f"# chosen by gelora-table --select-lr from {sweep_dir}: "
        "best validation score per method and task"
    )
    lines = [header, "lr_choice:"]
    for method in dict.fromkeys(c.method for c in choices):
        chosen = [c for c in choices if c.method == method and c.chosen is not None]
        if chosen:
            lines.append(f"  {_yaml_key(method)}:")
        for key in dict.fromkeys(c.key for c in chosen):
            mine = [c for c in chosen if c.key == key]
            if mine[0].column_key is None:  # one rate per task
                lines += [f"    {_yaml_key(key)}: {yaml_float(c.chosen)}" for c in mine]
                continue
            lines.append(f"    {_yaml_key(key)}:")  # one rate per value of the columns' key
            lines += [f"      {c.column_key}: {yaml_float(c.chosen)}" for c in mine]
    return "\n".join(lines) + "\n"
