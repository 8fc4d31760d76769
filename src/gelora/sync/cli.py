"""``gelora-sync``: upload a sweep's offline wandb runs with one command.

    gelora-sync multirun_outputs/table_cpu/<sweep_id> [--dry-run] [--project P] [--entity E]

A job's folder is named after its overrides and continues in subfolders when they are long
(``gelora.sweep_jobs.job_dirname``), so no fixed glob such as ``<sweep>/*/wandb/offline-run-*``
finds every job's run. This finds them all: each job folder's ``wandb/offline-run-*`` (a folder
holding ``.hydra/``, however deep, outside ``superseded/``: ``gelora.sweep_jobs.job_folders``),
and ``gelora-table --wandb``'s runs in the sweep folder's own ``wandb/``; then it runs
``wandb sync`` on them, with the options given. Only Hydra and OmegaConf are imported (by
``sweep_jobs``): no model code.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from gelora.sweep_jobs import job_folders

USAGE_ERROR = 2


def sweep_offline_runs(sweep_dir: Path) -> list[Path]:
    """The offline wandb runs of a sweep: its jobs' (``job_folders``) and those of the tables
    logged from its folder (``gelora-table --wandb``), in that order, each folder's sorted."""
    folders = [*job_folders(sweep_dir), sweep_dir]
    return [
        run
        for folder in folders
        for run in sorted((folder / "wandb").glob("offline-run-*"))
        if run.is_dir()
    ]


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gelora-sync",
        description="Upload every offline wandb run of one or more sweeps (each job's, however "
        "deep its folder, and gelora-table --wandb's) with `wandb sync`.",
    )
    parser.add_argument("sweep_dirs", nargs="+", type=Path, metavar="SWEEP_DIR")
    parser.add_argument(
        "--dry-run", action="store_true", help="say what would be uploaded; upload nothing"
    )
    parser.add_argument("--project", "-p", help="upload into this project instead of the runs'")
    parser.add_argument("--entity", "-e", help="upload under this entity instead of the runs'")
    parser.add_argument(
        "--include-synced", action="store_true", help="upload runs that were uploaded before too"
    )
    return parser


def sync_command(args: argparse.Namespace, runs: Sequence[Path]) -> list[str]:
    """``wandb sync`` with the options given, on ``runs``."""
    options = ["--dry-run"] if args.dry_run else []
    options += ["--include-synced"] if args.include_synced else []
    options += ["--project", args.project] if args.project else []
    options += ["--entity", args.entity] if args.entity else []
    return [sys.executable, "-m", "wandb", "sync", *options, *map(str, runs)]


def main(argv: Sequence[str] | None = None) -> None:
    args = argument_parser().parse_args(argv)
    runs: list[Path] = []
    for sweep_dir in args.sweep_dirs:
        if not sweep_dir.is_dir():
            print(f"gelora-sync: error: {sweep_dir} is not a folder", file=sys.stderr)
            raise SystemExit(USAGE_ERROR)
        found = sweep_offline_runs(sweep_dir)
        jobs = len(job_folders(sweep_dir))
        print(f"{sweep_dir}: {len(found)} offline wandb run(s) from {jobs} job folder(s)")
        runs += found
    if not runs:
        print(
            "gelora-sync: error: no offline wandb run there (did the jobs run with "
            "logger=wandb? the sweeps' folders: multirun_outputs/<experiment>/<sweep_id>)",
            file=sys.stderr,
        )
        raise SystemExit(USAGE_ERROR)
    raise SystemExit(subprocess.call(sync_command(args, runs)))


if __name__ == "__main__":
    main()
