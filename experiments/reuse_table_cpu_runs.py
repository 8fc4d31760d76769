"""Fill a CPU table's later sweeps with runs an earlier sweep already made with the same settings.

    python experiments/reuse_table_cpu_runs.py experiments/results/table_cpu
    python experiments/reuse_table_cpu_runs.py experiments/results/table_cpu2

For a table ``T`` (``experiments/results/T``), two of its sweeps contain jobs whose settings an
earlier sweep has already run:

- step 2 (``experiment=T``), seed 0, of each method that ran the learning-rate grid: the
  grid's run (``experiment=T_lr``, seed 0) at the rate ``--select-lr`` chose for it.
  The two experiments share every setting (``conf/experiment/setup/T.yaml``); step 2 only
  reads the rate from ``conf/lr_choice/T.yaml`` instead of sweeping it.
- step 3, for a table that has a budget curve (``conf/experiment/T_budget.yaml``; table_cpu
  has one, table_cpu2 none), at ``budget.rank=2``: step 2's lora and gelora_budget runs on its
  task, seed for seed (the budget curve takes the same rank-2 rate from the same file, and
  step 2's budget is rank 2).

Training on CPU is deterministic here (the README records a grid run rerun from scratch that
matched its record to the last digit), so running such a job again would spend 3-8 minutes of
a core to write the same numbers. This copies the earlier job's ``results.json`` into the later
sweep's job folder (named as the sweep names it), where the sweep finds a completed record and
skips the job; Hydra still writes that folder's own ``.hydra/`` when the sweep reaches it. Each
copy gets a ``REUSED_FROM`` file naming its source, and is checked first: the source must be a
completed run of the same method, task, seed, learning rate, budget, LoRA scaling and test rows.
Nothing is copied over a completed record. Copies are committed with ``--commit``.

What a table's step 2 reads is taken from its configs when they exist: the grid's rows
(``conf/experiment/T_lr.yaml``'s swept ``method``), the rate each row trains at (its own
``lr_choice.<row>.<task>``, or the one its ``lr_source`` names: table_cpu3's rows share one
rate, ``lr_choice.shared.<task>``) and the budget (``conf/experiment/setup/T.yaml``).
"""

from __future__ import annotations

import argparse
import functools
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from gelora.record import RunRecord

GRID_METHODS = ("head_only", "lora", "gelora_budget", "gelora_paper", "eva", "adalora")
BUDGET_METHODS = ("lora", "gelora_budget")
BUDGET_TASK = "rotten_tomatoes"
BUDGET_RANK = 2  # step 2's budget (setup/table_cpu.yaml)
SEEDS = (0, 1, 2, 3, 4)
MARKER = "REUSED_FROM"
CONF = Path(__file__).resolve().parents[1] / "conf"


@dataclass(frozen=True)
class Reuse:
    source: Path
    target: Path
    why: str


def completed_records(sweep: Path) -> dict[Path, RunRecord]:
    records = {}
    for path in sorted(sweep.rglob("results.json")):
        try:
            record = RunRecord.read(path)
        except (OSError, ValueError, TypeError):
            continue
        if record.status == "completed":
            records[path.parent] = record
    return records


def find_one(records: dict[Path, RunRecord], **want: object) -> Path | None:
    """The one completed run whose record has every ``want`` field; None if there is none;
    an error if there are several (nothing to choose between them by)."""
    found = [
        job
        for job, record in records.items()
        if all(getattr(record, key) == value for key, value in want.items())
    ]
    if len(found) > 1:
        raise SystemExit(f"reuse: several completed runs match {want}: {found}")
    return found[0] if found else None


@functools.lru_cache
def table_config(table: str) -> tuple[tuple[str, ...], dict[str, str], int]:
    """The table's grid rows, its ``lr_source`` (row -> the row or shared name whose rate it
    trains at) and its budget rank, from its configs; the first table's where a file is absent."""
    rows, sources, rank = GRID_METHODS, {}, BUDGET_RANK
    grid_file = CONF / "experiment" / f"{table}_lr.yaml"
    if grid_file.is_file():
        swept = OmegaConf.select(OmegaConf.load(grid_file), "hydra.sweeper.params.method")
        rows = tuple(str(swept).split(",")) if swept else rows
    table_file = CONF / "experiment" / f"{table}.yaml"
    if table_file.is_file():
        sources = OmegaConf.to_container(OmegaConf.load(table_file).get("lr_source") or {})
    setup_file = CONF / "experiment" / "setup" / f"{table}.yaml"
    if setup_file.is_file():
        rank = OmegaConf.select(OmegaConf.load(setup_file), "budget.rank", default=rank)
    return rows, sources, rank


def grid_to_table(root: Path, lr_choice: Path) -> list[Reuse]:
    """Step 2's seed-0 jobs of the grid methods <- step 1's run at the rate step 2 trains them
    at (the row's own choice, or the one ``lr_source`` names)."""
    choice = OmegaConf.to_container(OmegaConf.load(lr_choice).lr_choice)
    grid = completed_records(root / "lr_grid")
    rows, sources, _ = table_config(root.resolve().name)
    reuses = []
    for method in rows:
        for task, lr in (choice.get(sources.get(method, method)) or {}).items():
            source = find_one(grid, variant=method, task=task, seed=0, learning_rate=lr)
            if source is not None:
                target = root / "main" / f"method={method},seed=0,task={task}"
                reuses.append(Reuse(source, target, f"step 1's run at the chosen lr {lr}"))
    return reuses


def table_to_budget(root: Path) -> list[Reuse]:
    """Step 3's rank-2 jobs <- step 2's runs of the same method and seed on the curve's task."""
    table = completed_records(root / "main")
    reuses = []
    for method in BUDGET_METHODS:
        for seed in SEEDS:
            source = find_one(table, variant=method, task=BUDGET_TASK, seed=seed)
            if source is not None:
                name = f"budget.rank={BUDGET_RANK},method={method},seed={seed},task={BUDGET_TASK}"
                reuses.append(Reuse(source, root / "budget" / name, "step 2's run (rank 2)"))
    return reuses


def has_budget_curve(table: str) -> bool:
    """Whether the table has a step 3 (``conf/experiment/<table>_budget.yaml``) to fill."""
    return (CONF / "experiment" / f"{table}_budget.yaml").is_file()


def check_same_settings(
    source: RunRecord, target_sweep: dict[Path, RunRecord], rank: int = BUDGET_RANK
) -> str | None:
    """Why ``source`` cannot stand for a job of the target sweep, or None. The budget must be
    the table's rank (gelora_paper: its own cost); a completed run of the same method in the
    target sweep must share its LoRA scaling rule (gelora_paper alone keeps the paper's
    alpha/r = 32), and one of the same task its test rows."""
    if (source.budget or {}).get("rank") != rank and source.variant != "gelora_paper":
        return f"budget {source.budget}, not rank {rank}"
    rule = (source.scaling or {}).get("text")
    for other in target_sweep.values():
        if other.variant == source.variant and (other.scaling or {}).get("text") != rule:
            return f"scaling {rule!r} differs from the sweep's {source.variant} runs'"
    for other in target_sweep.values():
        if other.task == source.task and other.test_rows_sha256 != source.test_rows_sha256:
            return "scored on other test rows than the sweep's runs of this task"
    return None


def pending(reuses: list[Reuse]) -> list[Reuse]:
    """The reuses whose target holds no completed record, each checked against its target sweep
    as it stands; one that fails stops everything before anything is copied."""
    todo = []
    for reuse in reuses:
        existing = reuse.target / "results.json"
        if existing.exists() and RunRecord.read(existing).status == "completed":
            continue  # the sweep ran it, or an earlier reuse copied it: never overwritten
        source = RunRecord.read(reuse.source / "results.json")
        rank = table_config(reuse.target.parent.parent.resolve().name)[2]
        why = check_same_settings(source, completed_records(reuse.target.parent), rank)
        if why is not None:
            raise SystemExit(f"reuse: {reuse.source} cannot stand for {reuse.target}: {why}")
        todo.append(reuse)
    return todo


def copy(reuse: Reuse, root: Path) -> list[Path]:
    """Copy one record, mark it, give it ``.hydra/`` until the sweep writes its own; returns
    the files git keeps: the record, the marker and ``.hydra/*.yaml``."""
    reuse.target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(reuse.source / "results.json", reuse.target / "results.json")
    if (reuse.source / ".hydra").is_dir() and not (reuse.target / ".hydra").exists():
        shutil.copytree(reuse.source / ".hydra", reuse.target / ".hydra")
        (reuse.target / ".hydra" / "overrides.yaml").write_text(
            "".join(f"- {o}\n" for o in reuse.target.name.split(","))
        )
    (reuse.target / MARKER).write_text(f"{reuse.source.relative_to(root)}: {reuse.why}\n")
    print(f"copied {reuse.source.relative_to(root)} -> {reuse.target.relative_to(root)}")
    hydra = sorted((reuse.target / ".hydra").glob("*.yaml"))
    return [reuse.target / "results.json", reuse.target / MARKER, *hydra]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="experiments/results/table_cpu (or table_cpu2)")
    parser.add_argument("--lr-choice", type=Path, help="default: conf/lr_choice/<root's name>.yaml")
    parser.add_argument("--commit", action="store_true", help="git-commit the copies")
    args = parser.parse_args(argv)
    table = args.root.resolve().name
    args.lr_choice = args.lr_choice or CONF / "lr_choice" / f"{table}.yaml"
    if not args.lr_choice.is_file():
        sys.exit(f"reuse: {args.lr_choice} does not exist: run step 1 and --select-lr first")
    copied = []
    for reuse in pending(grid_to_table(args.root, args.lr_choice)):
        copied += copy(reuse, args.root)
    if has_budget_curve(table):
        for reuse in pending(table_to_budget(args.root)):  # after step 2's copies: it reads them
            copied += copy(reuse, args.root)
    if not copied:
        print("reuse: nothing to copy")
    if args.commit and copied:
        subprocess.run(["git", "add", "-f", *map(str, copied)], check=True)
        jobs = sum(p.name == MARKER for p in copied)
        message = (
            f"{table}: {jobs} jobs reuse an earlier sweep's run of the same settings "
            f"(experiments/reuse_table_cpu_runs.py; each has a {MARKER} file)"
        )
        subprocess.run(["git", "commit", "-q", "-m", message], check=True)


if __name__ == "__main__":
    main()
