"""The learning-rate grid's next step: one line of overrides per (method, task) whose best rate
is the largest it has run.

    python experiments/extend_lr_grid.py experiments/results/table_cpu/lr_grid

prints, for each such cell, ``method=<m> task=<t> optimizer.lr=<next>``, where the next rate
continues the grid's half-decade steps (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, ...). The table's step 1
runs each line as one more grid job and asks again, until nothing is printed: no method's rate is
then chosen at the edge of what it was allowed to try (experiments/results/table_cpu/README.md).
Prints nothing, and exits 1, while the grid has runs without a result or without a validation
score.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from gelora.reporting.lr_selection import at_top_of_grid, choose_lrs, grid_not_ready, yaml_float
from gelora.reporting.sweep_runs import load_runs


def next_rate(lr: float) -> float:
    """The next half-decade step: 1 -> 3 and 3 -> 10 of the same decade (3e-3 -> 1e-2)."""
    decade = 10 ** math.floor(math.log10(lr) + 1e-9)
    mantissa = lr / decade
    return float(f"{(3 if mantissa < 2 else 10) * decade:.1g}")


def extension_overrides(sweep_dir: Path) -> list[str]:
    choices = choose_lrs(load_runs(sweep_dir))
    if (why := grid_not_ready(choices)) is not None:
        raise SystemExit(f"extend_lr_grid: {why}")
    return [
        f"method={c.method} task={c.task} optimizer.lr={yaml_float(next_rate(c.chosen))}"
        for c in choices
        if at_top_of_grid(c)
    ]


if __name__ == "__main__":
    try:
        lines = extension_overrides(Path(sys.argv[1]))
    except SystemExit as stop:
        print(stop, file=sys.stderr)
        sys.exit(1)
    print("\n".join(lines))
