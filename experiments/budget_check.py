"""Which budget and remainder rule make GeLoRA's plan differ from uniform LoRA on every task.

    python experiments/budget_check.py --tasks rotten_tomatoes,snli --ranks 2,4,8 \
        --scores gap,id,waterfill --seeds 0,1,2,3,4 [--poolings mean,cls,token] \
        [--model minilm_l6] [--setup setup/table_cpu2] [--resume] \
        --out experiments/results/table_cpu3/budget_check

A comparison of an allocator with uniform LoRA can only show where their plans differ; at rank 2
on six blocks, budgeted GeLoRA moved 0-5 of 12 rank units (table_cpu2). For every task, sample
seed (``estimator.sample_seed``: which texts form the ID sample), budget (``budget.rank``: uniform
LoRA of that rank's parameters) and remainder rule (``rank_policy.score``), this computes
``method=gelora_budget``'s plan at the setup's settings (ID estimation only, no training; the
profiles land in the ID-profile cache, so a rerun only reads them) and reports:

- the block ranks, and the rank units moved off uniform (``rank_units_moved``: the ranks above
  uniform's, summed over the matrices and divided by the matrices per block), of the sample seed
  0 plan (the one a table trains, its sample fixed) and its range over all the seeds;
- the distinct plans over the seeds (plan stability).

With several ``--poolings`` (``estimator.pooling``), the summaries read the first pooling and a
section compares the poolings. Writes ``budget_check.json`` (every profile and plan) and
``budget_check.md`` under ``--out`` after each task, so an interrupted check keeps its finished
tasks: ``--resume`` carries on from them (the same ``--model`` and ``--setup`` only, as
``budget_check.settings.json`` records); without it an existing check is never replaced. Prints
the summary (per rank and rule: the fewest units moved over the tasks at seed 0).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from tqdm.auto import tqdm

from gelora.plan.lora_config import PlanStages
from gelora.table.plan_stability import rank_units, rank_units_moved
from gelora.train import config_dir


@dataclass(frozen=True)
class PlanCell:
    """One plan: a task, a sample seed, a budget rank and a remainder rule."""

    task: str
    sample_seed: int
    rank: int
    score: str
    intrinsic_dims: list[float]
    block_ranks: list[int]
    units_moved: float  # rank units above uniform's plan at the same budget
    uniform_units: float  # uniform's: blocks x rank
    adapter_params: int
    pooling: str = "mean"  # estimator.pooling (checks before poolings were an option: mean)

    @property
    def key(self) -> tuple[str, str, int, int, str]:
        return (self.task, self.pooling, self.sample_seed, self.rank, self.score)


def compute(args: argparse.Namespace, done: list[PlanCell], write) -> list[PlanCell]:
    """Every (task, pooling, seed, rank, score) plan not in ``done``; ``write(cells)`` after each
    task, so a stopped check keeps its finished tasks."""
    stages = PlanStages()
    cells = list(done)
    have = {c.key for c in done}
    every = itertools.product(args.tasks, args.poolings, args.seeds, args.ranks, args.scores)
    grid = [cell for cell in every if cell not in have]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        for index, (task, pooling, seed, rank, score) in enumerate(tqdm(grid, desc="plans")):
            cells.append(plan_cell(stages, args, task, pooling, seed, rank, score))
            if index + 1 == len(grid) or grid[index + 1][0] != task:
                write(cells)
    return cells


def plan_cell(stages, args, task: str, pooling: str, seed: int, rank: int, score: str) -> PlanCell:
    common = [
        f"experiment={args.setup}", f"model={args.model}", f"task={task}",
        f"estimator.pooling={pooling}", f"estimator.sample_seed={seed}", f"budget.rank={rank}",
        "budget.params=null", "logger=none", "paths.output_dir=.", "early_stopping.patience=3",
    ]  # fmt: skip
    cfg = compose("train", overrides=[*common, "method=gelora_budget",
                                      f"rank_policy.score={score}"])  # fmt: skip
    profile, plan, backbone, _ = stages.plan(cfg)
    uniform = compose("train", overrides=[*common, "method=lora"])
    _, uniform_plan, _, _ = stages.plan(uniform)
    ranks, reference = dict(plan.plan.ranks), dict(uniform_plan.plan.ranks)
    blocks = backbone.n_blocks
    return PlanCell(
        task, seed, rank, score, [round(d, 3) for d in profile.profile.dimensions],
        plan.plan.block_ranks(blocks), rank_units_moved(ranks, reference, blocks),
        rank_units(reference, blocks), plan.plan.trainable_adapter_params, pooling,
    )  # fmt: skip


def _range(values: list[float]) -> str:
    low, high = min(values), max(values)
    show = lambda v: f"{v:g}"  # noqa: E731
    return show(low) if low == high else f"{show(low)}-{show(high)}"


def markdown(cells: list[PlanCell], args: argparse.Namespace, seconds: float) -> str:
    """The check's page: the tasks with plans so far (in ``--tasks`` order); the summaries read
    the first pooling, and a last section compares the poolings when there are several."""
    tasks = [t for t in args.tasks if any(c.task == t for c in cells)]
    first_seed, pooling = args.seeds[0], args.poolings[0]
    pooled = [c for c in cells if c.pooling == pooling]
    several, partial = len(args.poolings) > 1, len(tasks) < len(args.tasks)
    lines = [
        "# Budget check: how far budgeted GeLoRA's plan moves off uniform LoRA",
        "",
        f"Written by `python experiments/budget_check.py` ({args.model}, `experiment="
        f"{args.setup}`; sample seeds {', '.join(map(str, args.seeds))}"
        + (f"; poolings {', '.join(args.poolings)}" if several else "")
        + f"; ID estimation only, no training; {len(cells)} plans in {seconds / 60:.1f} minutes"
        + (f"; {len(tasks)} of {len(args.tasks)} tasks so far" if partial else "")
        + "). Units: ranks above "
        "uniform's plan at the same budget, summed over the matrices and divided by the matrices "
        "per block (one unit: one rank on every matrix of one block). Every plan: "
        "`budget_check.json`.",
        "",
        f"## Units moved at sample seed {first_seed} (the plan a table trains), per task"
        + (f" ({pooling} pooling)" if several else ""),
        "",
        "| budget rank | rule | " + " | ".join(tasks) + " | fewest |",
        "|---|---|" + "---:|" * (len(tasks) + 1),
    ]
    for rank, score in itertools.product(args.ranks, args.scores):
        moved = [
            next(c for c in pooled if (c.task, c.sample_seed, c.rank, c.score) ==
                 (t, first_seed, rank, score)).units_moved
            for t in tasks
        ]  # fmt: skip
        total = cells[0].uniform_units / cells[0].rank * rank
        cells_text = [f"{m:g}" for m in moved]
        lines.append(
            f"| {rank} ({total:g} units) | {score} | " + " | ".join(cells_text)
            + f" | {min(moved):g} |"
        )  # fmt: skip
    lines += ["", "## Over the sample seeds: units moved (range) and distinct plans"
              + (f" ({pooling} pooling)" if several else ""), ""]  # fmt: skip
    lines += seeds_table(pooled, args, tasks)
    if several:
        for other in args.poolings[1:]:
            lines += ["", f"## Over the sample seeds, {other} pooling", ""]
            lines += seeds_table([c for c in cells if c.pooling == other], args, tasks)
    lines += ["", "## Plans (block ranks) per task and sample seed", ""]
    for task in tasks:
        lines += plans_table(cells, args, task, several)
    return "\n".join(lines)


def seeds_table(cells: list[PlanCell], args: argparse.Namespace, tasks: list[str]) -> list[str]:
    """Per budget and rule, per task: the units moved over the seeds (range) and distinct plans."""
    lines = ["| budget rank | rule | " + " | ".join(tasks) + " |",
             "|---|---|" + "---|" * len(tasks)]  # fmt: skip
    for rank, score in itertools.product(args.ranks, args.scores):
        row = []
        for task in tasks:
            mine = [c for c in cells if (c.task, c.rank, c.score) == (task, rank, score)]
            plans = {tuple(c.block_ranks) for c in mine}
            row.append(f"{_range([c.units_moved for c in mine])} ({len(plans)} plans)")
        lines.append(f"| {rank} | {score} | " + " | ".join(row) + " |")
    return lines


def plans_table(cells: list[PlanCell], args: argparse.Namespace, task: str, several: bool):
    rules = list(itertools.product(args.ranks, args.scores))
    lead = "| pooling | seed |" if several else "| seed |"
    lines = [f"### {task}", "", lead + " IDs (embeddings, blocks) | "
             + " | ".join(f"r{r} {s}" for r, s in rules) + " |",
             "|---|" + ("---|" if several else "") + "---|" + "---|" * len(rules)]  # fmt: skip
    for pooling, seed in itertools.product(args.poolings, args.seeds):
        mine = {(c.rank, c.score): c for c in cells if c.key[:3] == (task, pooling, seed)}
        ids = " ".join(f"{d:.1f}" for d in next(iter(mine.values())).intrinsic_dims)
        plans = [",".join(map(str, mine[r, s].block_ranks)) for r, s in rules]
        lead = f"| {pooling} | {seed} |" if several else f"| {seed} |"
        lines.append(f"{lead} {ids} | " + " | ".join(plans) + " |")
    return [*lines, ""]


def previous_cells(args: argparse.Namespace) -> list[PlanCell]:
    """The plans an earlier check wrote under ``--out``, when ``--resume`` carries it on; an
    existing check is never replaced, nor resumed under another model or setup."""
    found, settings = args.out / "budget_check.json", args.out / "budget_check.settings.json"
    mine = {"model": args.model, "setup": args.setup}
    if not found.exists():
        return []
    if not args.resume:
        raise SystemExit(f"budget_check: {found} exists; pass --resume to carry it on, or "
                         "choose another --out")  # fmt: skip
    theirs = json.loads(settings.read_text()) if settings.exists() else None
    if theirs != mine:
        raise SystemExit(f"budget_check: {found} was written with {theirs}, not {mine}; "
                         "choose another --out")  # fmt: skip
    return [PlanCell(**row) for row in json.loads(found.read_text())]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    split = lambda s: s.split(",")  # noqa: E731
    integers = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    parser.add_argument("--tasks", required=True, type=split)
    parser.add_argument("--ranks", default=[2, 4, 8], type=integers)
    parser.add_argument("--scores", default=["gap", "id", "waterfill"], type=split)
    parser.add_argument("--seeds", default=[0, 1, 2, 3, 4], type=integers)
    parser.add_argument("--poolings", default=["mean"], type=split)
    parser.add_argument("--model", default="minilm_l6")
    parser.add_argument("--setup", default="setup/table_cpu2")
    parser.add_argument("--resume", action="store_true", help="carry on a check under --out")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    done = previous_cells(args)
    started = time.perf_counter()

    def write(cells: list[PlanCell]) -> None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "budget_check.settings.json").write_text(
            json.dumps({"model": args.model, "setup": args.setup}) + "\n"
        )
        (args.out / "budget_check.json").write_text(
            json.dumps([asdict(c) for c in cells], indent=1) + "\n"
        )
        text = markdown(cells, args, time.perf_counter() - started)
        (args.out / "budget_check.md").write_text(text + "\n")

    cells = compute(args, done, write)
    if not cells:
        raise SystemExit("budget_check: no plans to write")
    write(cells)
    print(markdown(cells, args, time.perf_counter() - started).split("## Over the sample seeds")[0])
    print(f"wrote {args.out / 'budget_check.md'}")


if __name__ == "__main__":
    main()
