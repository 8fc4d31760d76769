"""``gelora-table``: a sweep directory -> paper-style tables, a CSV of every run, and plots.

    gelora-table multirun_outputs/table_cpu/<sweep_id> [--out DIR]

Every job directory (one with ``.hydra/``) is one run (``gelora.reporting.sweep_runs``); the
tables and CSV are ``gelora.reporting.tables``, the plots ``gelora.reporting.sweep_plots``.
Writes ``table.md``, ``table.tex``, ``runs.csv``, ``id_profiles.png``, ``rank_plans.png`` and
``score_vs_params.png`` into ``--out`` (default: the sweep directory).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from gelora.atomic import write_text_atomic
from gelora.reporting.sweep_runs import load_runs
from gelora.reporting.tables import latex_table, markdown_table, write_csv


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
