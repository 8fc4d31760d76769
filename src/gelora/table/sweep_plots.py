"""Figures of a sweep: ID profiles per task, rank plans side by side, score against budget, the
paired differences against a reference method, and each allocator against its own shuffle."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, NullFormatter

from gelora.reporting.plots import save_figure
from gelora.table.paired import Comparison, sweep_direction
from gelora.table.paired_tables import PairedSection
from gelora.table.placement import Placement
from gelora.table.sweep_runs import SweepRun


def _completed(runs: Sequence[SweepRun]) -> list[SweepRun]:
    return [r for r in runs if r.status == "completed"]


def distinct_colours(count: int) -> list[tuple[float, ...]]:
    """``count`` colours no two alike: tab10 up to 10 (matplotlib's default cycle), tab20 up
    to 20, else evenly spaced along turbo (a table with eleven rows would otherwise repeat the
    default cycle's first colour, and two methods' bars would look like one)."""
    if count <= 10:
        return [matplotlib.colormaps["tab10"](k) for k in range(count)]
    if count <= 20:
        return [matplotlib.colormaps["tab20"](k) for k in range(count)]
    turbo = matplotlib.colormaps["turbo"]
    return [turbo(k / (count - 1)) for k in range(count)]


def plot_id_profiles(runs: Sequence[SweepRun], path: Path) -> Path:
    """Mean ID per hidden-state layer for each task (over its runs), with the spread as bars."""
    done = [r for r in _completed(runs) if r.intrinsic_dims]
    tasks = list(dict.fromkeys(r.task for r in done))
    figure, ax = plt.subplots(figsize=(6.4, 3.8))
    for task in tasks:
        profiles = [r.intrinsic_dims for r in done if r.task == task]
        width = min(len(p) for p in profiles)
        means = [statistics.fmean(p[i] for p in profiles) for i in range(width)]
        spread = [
            statistics.stdev([p[i] for p in profiles]) if len(profiles) > 1 else 0.0
            for i in range(width)
        ]
        ax.errorbar(range(width), means, yerr=spread, marker="o", capsize=3, label=task)
    if tasks:
        width = min(len(r.intrinsic_dims) for r in done)
        ax.set_xticks(range(width), ["emb"] + [f"b{i}" for i in range(width - 1)])
        ax.legend(fontsize=8)
    ax.set_xlabel("hidden-state layer")
    ax.set_ylabel("intrinsic dimension")
    ax.set_title("ID profile per task (mean over runs, bars: std)")
    ax.grid(alpha=0.3)
    return save_figure(figure, path)


def plot_rank_plans(runs: Sequence[SweepRun], path: Path) -> Path:
    """Per task, each method's rank per block (the median over its runs), as grouped bars."""
    done = [r for r in _completed(runs) if r.block_ranks]
    tasks = list(dict.fromkeys(r.task for r in done)) or ["(no completed runs)"]
    methods = list(dict.fromkeys(r.method for r in done))
    figure, axes = plt.subplots(
        1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False, sharey=True
    )
    colours = distinct_colours(len(methods))
    for ax, task in zip(axes[0], tasks, strict=True):
        width = 0.8 / max(len(methods), 1)
        for k, method in enumerate(methods):
            plans = [r.block_ranks for r in done if r.task == task and r.method == method]
            if not plans:
                continue
            n = min(len(p) for p in plans)
            ranks = [statistics.median(p[b] for p in plans) for b in range(n)]
            ax.bar([b + k * width for b in range(n)], ranks, width, label=method, color=colours[k])
        ax.set_title(task)
        ax.set_xlabel("block")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("rank (largest in block, median over seeds)")
    if methods:
        axes[0][-1].legend(fontsize=7)
    figure.suptitle("Rank plans side by side", y=1.03)
    return save_figure(figure, path)


def plot_score_vs_params(runs: Sequence[SweepRun], path: Path) -> Path:
    """Test score against adapter parameters: one point per method and task, bars over seeds."""
    done = [r for r in _completed(runs) if r.score is not None and r.adapter_params]
    tasks = list(dict.fromkeys(r.task for r in done)) or ["(no completed runs)"]
    methods = list(dict.fromkeys(r.method for r in done))
    figure, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
    markers = "osD^vP*Xh<>"
    colours = distinct_colours(len(methods))
    for ax, task in zip(axes[0], tasks, strict=True):
        for k, method in enumerate(methods):
            mine = [r for r in done if r.task == task and r.method == method]
            if not mine:
                continue
            scores = [r.score for r in mine]
            spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
            ax.errorbar(
                statistics.fmean(r.adapter_params for r in mine),
                statistics.fmean(scores),
                yerr=spread,
                marker=markers[k % len(markers)],
                color=colours[k],
                capsize=3,
                label=method,
                linestyle="none",
            )
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1e3:g}k"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(task)
        ax.set_xlabel("adapter parameters")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test score (mean, bars: std over seeds)")
    if methods:
        axes[0][-1].legend(fontsize=7)
    return save_figure(figure, path)


def plot_sweep(runs: Sequence[SweepRun], out: Path) -> list[Path]:
    return [
        plot_id_profiles(runs, out / "id_profiles.png"),
        plot_rank_plans(runs, out / "rank_plans.png"),
        plot_score_vs_params(runs, out / "score_vs_params.png"),
    ]


def plot_paired_differences(section: PairedSection, path: Path) -> Path:
    """Each method against the reference (positive favours the method; points for a score, the
    loss's units for a loss): the task-level mean difference with its 95% interval (black; the
    one the verdicts rest on: Student's t over the task means, or over the seeds of a single
    task), and every (task, seed) pair's difference as a dot coloured by task.

    A forest plot: what a reader checks first is whether an interval crosses zero, and whether
    one task carries the mean."""
    rows = [(c.method, c) for c in section.overall if c.pairs]
    return _forest_plot(
        rows,
        section.direction.describe_difference(section.reference),
        f"Paired differences against {section.reference} (task-level mean and 95% CI)",
        path,
    )


def plot_placement_effects(placements: Sequence[Placement], path: Path) -> Path:
    """Each allocator minus its own shuffled control (``gelora-table``'s placement sections):
    the same forest plot as :func:`plot_paired_differences`, one row per allocator, so the
    placement effects of several allocators read side by side."""
    rows = [
        (f"{p.row} - {p.control}", c)
        for p in placements
        for c in p.section.overall
        if c.method == p.row and c.pairs
    ]
    direction = placements[0].section.direction
    return _forest_plot(
        rows,
        direction.describe_difference("its own shuffle"),
        "Placement effects: each allocator against its own shuffle (task-level mean and 95% CI)",
        path,
    )


def _forest_plot(
    rows: Sequence[tuple[str, Comparison]], xlabel: str, title: str, path: Path
) -> Path:
    """One row per ``(label, comparison)``: every pair's difference as a dot coloured by task,
    and the task-level mean with its 95% interval (``Comparison.task_level``), as the tables."""
    tasks = list(dict.fromkeys(p.task for _, c in rows for p in c.pairs))
    colours = {task: f"C{k % 10}" for k, task in enumerate(tasks)}
    figure, ax = plt.subplots(figsize=(6.4, 0.9 + 0.45 * max(len(rows), 1)))
    for row, (_, comparison) in enumerate(rows):
        for k, pair in enumerate(comparison.pairs):
            jitter = 0.22 * ((k * 0.618) % 1 - 0.5)  # spread, deterministic: no rng in a figure
            ax.plot(pair.difference, row + jitter, "o", ms=3.5, alpha=0.6,
                    color=colours[pair.task])  # fmt: skip
        _mean_with_interval(ax, comparison, row, horizontal=True, fmt="D", color="black",
                            capsize=4, ms=6, zorder=3)  # fmt: skip
    ax.axvline(0.0, color="grey", lw=1, ls="--")
    ax.set_yticks(range(len(rows)), [label for label, _ in rows])
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    handles = [plt.Line2D([], [], ls="none", marker="o", color=colours[t], label=t) for t in tasks]
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="x", alpha=0.3)
    return save_figure(figure, path)


def _mean_with_interval(ax, comparison: Comparison, at: float, *, horizontal: bool, **style):
    """The task-level mean of ``comparison`` at ``at`` with its 95% interval as an error bar
    (none when it has one value only)."""
    level = comparison.task_level
    if level is None:
        return
    interval = level.interval()
    mean = level.mean
    error = None if interval is None else [[mean - interval[0]], [interval[1] - mean]]
    if horizontal:
        ax.errorbar(mean, at, xerr=error, **style)
    else:
        ax.errorbar(at, mean, yerr=error, **style)


def _numeric_first(value: str) -> tuple[int, float | str]:
    try:
        return 0, float(value)
    except ValueError:
        return 1, value


def plot_curve(
    runs: Sequence[SweepRun], section: PairedSection | None, key: str, path: Path
) -> Path:
    """A budget curve (``gelora-table --columns budget.rank``): per task, each method's test
    score (mean, bars: std over seeds) against its mean adapter parameters at each value of
    ``key``, joined in the order of the values; below it, each method's mean paired difference
    from the reference at each value with its 95% bootstrap interval. A method's point sits at
    its own cost, so a curve to the left spent less."""
    done = [r for r in _completed(runs) if r.score is not None and r.column is not None]
    direction = sweep_direction(done)
    tasks = list(dict.fromkeys(r.base_task for r in done)) or ["(no completed runs)"]
    methods = list(dict.fromkeys(r.method for r in done))
    values = sorted(dict.fromkeys(r.column for r in done), key=_numeric_first)
    rows = 2 if section is not None else 1
    figure, axes = plt.subplots(
        rows, len(tasks), figsize=(5.0 * len(tasks), 3.4 * rows), squeeze=False, sharex="col"
    )
    for col, task in enumerate(tasks):
        top = axes[0][col]
        costs: set[float] = set()  # ticks at the parameters the methods spent
        for k, method in enumerate(methods):
            points = []  # (params, mean, std, label) per value
            for value in values:
                mine = [
                    r for r in done if (r.base_task, r.method, r.column) == (task, method, value)
                ]
                if not mine or not all(r.adapter_params for r in mine):
                    continue
                scores = [direction.scale * r.score for r in mine]
                spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
                params = statistics.fmean(r.adapter_params for r in mine)
                points.append((params, statistics.fmean(scores), spread, mine[0].task))
            if not points:
                continue
            xs, ys, errs, _ = zip(*points, strict=True)
            costs.update(xs)
            top.errorbar(xs, ys, yerr=errs, marker="os^Dv<>"[k % 7], capsize=3, label=method,
                         color=f"C{k % 10}")  # fmt: skip
            if section is None or method == section.reference:
                continue
            low_ax = axes[1][col]
            for params, _, _, label in points:
                comparison = section.per_task.get((method, label))
                if comparison is None or not comparison.pairs:
                    continue
                style = {"marker": "os^Dv<>"[k % 7], "capsize": 3, "color": f"C{k % 10}"}
                _mean_with_interval(low_ax, comparison, params, horizontal=False, **style)
        top.set_title(f"{task}: {key} = {', '.join(values)}")
        shown = "test score x100" if direction.scale == 100 else f"test {direction.metric}"
        top.set_ylabel(f"{shown} (mean, bars: std)")
        top.grid(alpha=0.3)
        top.legend(fontsize=7)
        for ax in axes[:, col]:
            ax.set_xscale("log")
            ax.set_xticks(sorted(costs), [f"{c / 1e3:.3g}k" for c in sorted(costs)])
            ax.xaxis.set_minor_formatter(NullFormatter())
        axes[-1][col].set_xlabel("adapter parameters")
        if section is not None:
            bottom = axes[1][col]
            bottom.axhline(0.0, color="grey", lw=1, ls="--")
            bottom.set_ylabel(
                f"vs {section.reference}, {direction.unit}\n(mean, 95% CI; + favours the row)"
            )
            bottom.grid(alpha=0.3)
    return save_figure(figure, path)
