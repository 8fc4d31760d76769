"""The learning-rate grid's next step: one line of overrides per (method, task) whose best rate
is at an edge of what it has run, the largest or the smallest.

    python experiments/extend_lr_grid.py experiments/results/table_cpu/lr_grid
    python experiments/extend_lr_grid.py SWEEP --columns budget.rank   # a grid per budget

prints, for each such cell, ``method=<m> task=<t> optimizer.lr=<rate>``, where the rate continues
the grid's half-decade steps one step past the edge: upward where the best rate is the largest
(3e-4, 1e-3, 3e-3, 1e-2, 3e-2, ...), downward where it is the smallest (1e-3 -> 3e-4,
3e-4 -> 1e-4). With ``--columns KEY`` (a grid that also sweeps ``KEY``, e.g. ``budget.rank``)
each value of KEY is its own grid and the line names it: ``method=<m> task=<t> <KEY>=<value>
optimizer.lr=<rate>``. The table's step 1 runs each line as one more grid job and asks again,
until nothing is printed: no method's rate is then chosen at an edge of what it was allowed to
try (experiments/results/table_cpu/README.md). Prints nothing, and exits 1, while the grid has
runs without a result or without a validation score.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from gelora.table.lr_selection import choose_lrs, grid_edge, grid_not_ready, yaml_float
from gelora.table.sweep_runs import load_runs, split_by_column


def next_rate(lr: float) -> float:
    """The next half-decade step up: 1 -> 3 and 3 -> 10 of the same decade (3e-3 -> 1e-2)."""
    decade = 10 ** math.floor(math.log10(lr) + 1e-9)
    mantissa = lr / decade
    return float(f"{(3 if mantissa < 2 else 10) * decade:.1g}")


def previous_rate(lr: float) -> float:
    """The half-decade step down: 3 -> 1 of the same decade and 1 -> 3 of the one below
    (1e-3 -> 3e-4, 3e-4 -> 1e-4)."""
    decade = 10 ** math.floor(math.log10(lr) + 1e-9)
    mantissa = lr / decade
    return float(f"{(1 if mantissa >= 2 else 0.3) * decade:.1g}")


def extension_overrides(sweep_dir: Path, columns: str | None = None) -> list[str]:
    runs = load_runs(sweep_dir)
    if columns is not None:
        runs = split_by_column(runs, columns)
    choices = choose_lrs(runs, columns)
    if (why := grid_not_ready(choices)) is not None:
        raise SystemExit(f"extend_lr_grid: {why}")
    lines = []
    for choice in choices:
        edge = grid_edge(choice)
        if edge is None:
            continue
        rate = next_rate(choice.chosen) if edge == "top" else previous_rate(choice.chosen)
        where = f"task={choice.key}"
        if choice.column is not None:
            where += f" {columns}={choice.column}"
        lines.append(f"method={choice.method} {where} optimizer.lr={yaml_float(rate)}")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument(
        "--columns",
        default=None,
        metavar="KEY",
        help="a config key the grid also sweeps (budget.rank): one grid per value",
    )
    args = parser.parse_args(argv)
    try:
        lines = extension_overrides(args.sweep_dir, args.columns)
    except (SystemExit, ValueError) as stop:
        print(stop, file=sys.stderr)
        sys.exit(1)
    if lines:
        print("\n".join(lines))


if __name__ == "__main__":
    main()
