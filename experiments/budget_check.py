"""Which budget and remainder rule make GeLoRA's plan differ from uniform LoRA on every task.

    python experiments/budget_check.py --tasks rotten_tomatoes,snli --ranks 2,4,8 \
        --scores gap,id,waterfill --seeds 0,1,2,3,4 [--model minilm_l6] \
        [--setup setup/table_cpu2] --out experiments/results/table_cpu3/budget_check

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

Writes ``budget_check.json`` (every profile and plan) and ``budget_check.md`` under ``--out``;
prints the summary (per rank and rule: the fewest units moved over the tasks at seed 0).
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


def compute(args: argparse.Namespace) -> list[PlanCell]:
    stages = PlanStages()
    cells = []
    grid = list(itertools.product(args.tasks, args.seeds, args.ranks, args.scores))
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        for task, seed, rank, score in tqdm(grid, desc="plans"):
            common = [
                f"experiment={args.setup}", f"model={args.model}", f"task={task}",
                f"estimator.sample_seed={seed}", f"budget.rank={rank}", "budget.params=null",
                "logger=none", "paths.output_dir=.", "early_stopping.patience=3",
            ]  # fmt: skip
            cfg = compose("train", overrides=[*common, "method=gelora_budget",
                                              f"rank_policy.score={score}"])  # fmt: skip
            profile, plan, backbone, _ = stages.plan(cfg)
            uniform = compose("train", overrides=[*common, "method=lora"])
            _, uniform_plan, _, _ = stages.plan(uniform)
            ranks, reference = dict(plan.plan.ranks), dict(uniform_plan.plan.ranks)
            blocks = backbone.n_blocks
            uniform_units = rank_units(reference, blocks)
            cells.append(
                PlanCell(
                    task, seed, rank, score, [round(d, 3) for d in profile.profile.dimensions],
                    plan.plan.block_ranks(blocks), rank_units_moved(ranks, reference, blocks),
                    uniform_units, plan.plan.trainable_adapter_params,
                )
            )  # fmt: skip
    return cells


def _range(values: list[float]) -> str:
    low, high = min(values), max(values)
    show = lambda v: f"{v:g}"  # noqa: E731
    return show(low) if low == high else f"{show(low)}-{show(high)}"


def markdown(cells: list[PlanCell], args: argparse.Namespace, seconds: float) -> str:
    first_seed = args.seeds[0]
    lines = [
        "# Budget check: how far budgeted GeLoRA's plan moves off uniform LoRA",
        "",
        f"Written by `python experiments/budget_check.py` ({args.model}, `experiment="
        f"{args.setup}`; sample seeds {', '.join(map(str, args.seeds))}; ID estimation only, "
        f"no training; {len(cells)} plans in {seconds / 60:.1f} minutes). Units: ranks above "
        "uniform's plan at the same budget, summed over the matrices and divided by the matrices "
        "per block (one unit: one rank on every matrix of one block). Every plan: "
        "`budget_check.json`.",
        "",
        f"## Units moved at sample seed {first_seed} (the plan a table trains), per task",
        "",
        "| budget rank | rule | " + " | ".join(args.tasks) + " | fewest |",
        "|---|---|" + "---:|" * (len(args.tasks) + 1),
    ]
    for rank, score in itertools.product(args.ranks, args.scores):
        moved = [
            next(c for c in cells if (c.task, c.sample_seed, c.rank, c.score) ==
                 (t, first_seed, rank, score)).units_moved
            for t in args.tasks
        ]  # fmt: skip
        total = cells[0].uniform_units / cells[0].rank * rank
        cells_text = [f"{m:g}" for m in moved]
        lines.append(
            f"| {rank} ({total:g} units) | {score} | " + " | ".join(cells_text)
            + f" | {min(moved):g} |"
        )  # fmt: skip
    lines += ["", "## Over the sample seeds: units moved (range) and distinct plans", ""]
    lines += ["| budget rank | rule | " + " | ".join(args.tasks) + " |",
              "|---|---|" + "---|" * len(args.tasks)]  # fmt: skip
    for rank, score in itertools.product(args.ranks, args.scores):
        row = []
        for task in args.tasks:
            mine = [c for c in cells if (c.task, c.rank, c.score) == (task, rank, score)]
            plans = {tuple(c.block_ranks) for c in mine}
            row.append(f"{_range([c.units_moved for c in mine])} ({len(plans)} plans)")
        lines.append(f"| {rank} | {score} | " + " | ".join(row) + " |")
    lines += ["", "## Plans (block ranks) per task and sample seed", ""]
    for task in args.tasks:
        lines += [f"### {task}", "", "| seed | IDs (embeddings, blocks) | "
                  + " | ".join(f"r{r} {s}" for r, s in itertools.product(args.ranks, args.scores))
                  + " |", "|---|---|" + "---|" * (len(args.ranks) * len(args.scores))]  # fmt: skip
        for seed in args.seeds:
            mine = {(c.rank, c.score): c for c in cells if (c.task, c.sample_seed) == (task, seed)}
            ids = " ".join(f"{d:.1f}" for d in next(iter(mine.values())).intrinsic_dims)
            plans = [",".join(map(str, mine[r, s].block_ranks))
                     for r, s in itertools.product(args.ranks, args.scores)]  # fmt: skip
            lines.append(f"| {seed} | {ids} | " + " | ".join(plans) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", required=True, type=lambda s: s.split(","))
    parser.add_argument("--ranks", default=[2, 4, 8], type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--scores", default=["gap", "id", "waterfill"],
                        type=lambda s: s.split(","))  # fmt: skip
    parser.add_argument("--seeds", default=[0, 1, 2, 3, 4],
                        type=lambda s: [int(x) for x in s.split(",")])  # fmt: skip
    parser.add_argument("--model", default="minilm_l6")
    parser.add_argument("--setup", default="setup/table_cpu2")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    cells = compute(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "budget_check.json").write_text(
        json.dumps([asdict(c) for c in cells], indent=1) + "\n"
    )
    text = markdown(cells, args, time.perf_counter() - started)
    (args.out / "budget_check.md").write_text(text + "\n")
    print(text.split("## Over the sample seeds")[0])
    print(f"wrote {args.out / 'budget_check.md'}")


if __name__ == "__main__":
    main()
