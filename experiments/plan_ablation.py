"""How GeLoRA's rank plan depends on the choices the paper leaves open, on the six CPU tasks.

    python experiments/plan_ablation.py [--tasks rotten_tomatoes,...] [--out experiments/results]

For each task, at the first CPU table's settings (``experiment=setup/table_cpu``: all-MiniLM-L6-v2,
2,400 training rows, 64 tokens, a 2,000-text ID sample), the ID profile under every pooling
(``mean``, ``cls``, ``token``: one seeded non-special token per text) and three sample seeds, and
from each profile the plans:

- unbudgeted (the paper's rule: rank = max(ceil(gap), 0) + 1), with ``noise_k`` 0 (the paper) and
  1 (a gap counts only beyond one standard deviation of its resampled estimate);
- at the table's budget (uniform rank 2 = 82,944 parameters) with each remainder rule
  (``gap``: today's, ``id``, ``waterfill``) and each ``noise_k``.

ID estimation only, no training; profiles land in the ID-profile cache, so a rerun only reads
them. Writes ``plan_ablation.json`` (every profile and plan), ``plan_ablation.md`` (the plans
side by side and how often they agree) and ``plan_ablation.png`` (the plans of three rules, drawn;
``--plot-only`` redraws it from the JSON) under ``--out``; a "What it shows" section already at the
end of ``plan_ablation.md`` (written by a person) is kept, for them to re-check against the new
numbers.
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

from gelora.plan.compare import PlanVariant, agreement, plan_variant
from gelora.plan.lora_config import PlanStages
from gelora.train import config_dir

TASKS = ("rotten_tomatoes", "newsgroups20", "vader_movies", "snli", "reuters_r8", "vader_nyt")
POOLINGS = ("mean", "cls", "token")
SAMPLE_SEEDS = (0, 1, 2)
NOISE_KS = (0, 1)
REMAINDERS = ("gap", "id", "waterfill")
BUDGET_RANK = 2
# The plan rules, as the columns of a task's table: (label, budget rank, remainder, noise_k).
RULES = [
    *((f"paper k={k}", None, "gap", k) for k in NOISE_KS),
    *((f"r2 {r} k={k}", BUDGET_RANK, r, k) for r in REMAINDERS for k in NOISE_KS),
]


@dataclass(frozen=True)
class Cell:
    """One plan: a task, a sample (pooling, seed) and a rule."""

    task: str
    pooling: str
    sample_seed: int
    rule: str
    variant: PlanVariant
    stds: list[float | None]


def overrides(task: str, pooling: str, seed: int, budget: int | None, remainder: str, k: int):
    return [
        "experiment=setup/table_cpu",
        f"task={task}",
        f"estimator.pooling={pooling}",
        f"estimator.sample_seed={seed}",
        f"budget.rank={'null' if budget is None else budget}",
        f"rank_policy.score={remainder}",
        f"rank_policy.noise_k={k}",
        "paths.output_dir=.",
        "logger=none",
    ]


def run(tasks: list[str]) -> list[Cell]:
    stages = PlanStages()
    cells = []
    grid = list(itertools.product(tasks, POOLINGS, SAMPLE_SEEDS, RULES))
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        for task, pooling, seed, (rule, budget, remainder, k) in tqdm(grid, desc="plans"):
            cfg = compose("train", overrides=overrides(task, pooling, seed, budget, remainder, k))
            profile, plan, backbone, _ = stages.plan(cfg)
            variant = plan_variant(rule, profile, plan, backbone.n_blocks)
            cells.append(Cell(task, pooling, seed, rule, variant, profile.profile.stds))
    return cells


def plan_text(ranks: list[int]) -> str:
    return ",".join(map(str, ranks))


def task_section(task: str, cells: list[Cell]) -> list[str]:
    """A task's plans: one row per sample (pooling, seed), one column per rule; then how many
    distinct plans each rule gives over the samples."""
    mine = [c for c in cells if c.task == task]
    lines = [f"### {task}", ""]
    lines.append("ID profile (layer 0..6) per sample, and its largest resampling std:")
    lines.append("")
    lines += ["| pooling | seed | IDs | max std |", "|---|---|---|---|"]
    for pooling, seed in itertools.product(POOLINGS, SAMPLE_SEEDS):
        first = next(c for c in mine if (c.pooling, c.sample_seed) == (pooling, seed))
        ids = " ".join(f"{d:.1f}" for d in first.variant.dimensions)
        stds = max((s for s in first.stds if s is not None), default=float("nan"))
        lines.append(f"| {pooling} | {seed} | {ids} | {stds:.2f} |")
    lines += ["", "Rank per block (block 0..5):", ""]
    lines.append("| pooling | seed | " + " | ".join(r[0] for r in RULES) + " |")
    lines.append("|---|---|" + "---|" * len(RULES))
    for pooling, seed in itertools.product(POOLINGS, SAMPLE_SEEDS):
        row = [
            plan_text(
                next(
                    c for c in mine if (c.pooling, c.sample_seed, c.rule) == (pooling, seed, r[0])
                ).variant.block_ranks
            )
            for r in RULES
        ]
        lines.append(f"| {pooling} | {seed} | " + " | ".join(row) + " |")
    lines += ["", "| rule | " + " | ".join(AGREEMENT_COLUMNS) + " |"]
    lines.append("|---|" + "---|" * len(AGREEMENT_COLUMNS))
    for rule, *_ in RULES:
        lines.append(f"| {rule} | " + " | ".join(agreement_cells(mine, rule)) + " |")
    return [*lines, ""]


AGREEMENT_COLUMNS = (
    "distinct plans, 9 samples",
    "seeds agree (mean pooling)",
    "poolings agree (seed 0)",
    "largest block move",
    "max rank of one block",
)


def agreement_cells(cells: list[Cell], rule: str) -> list[str]:
    ruled = [c for c in cells if c.rule == rule]
    plans = {tuple(c.variant.block_ranks) for c in ruled}
    seeds = agreement([c.variant for c in ruled if c.pooling == "mean"])
    poolings = agreement([c.variant for c in ruled if c.sample_seed == 0])
    everything = agreement([c.variant for c in ruled])
    return [
        str(len(plans)),
        f"{seeds.identical_pairs}/{seeds.pairs}",
        f"{poolings.identical_pairs}/{poolings.pairs}",
        str(everything.largest_move),
        str(max(max(c.variant.block_ranks) for c in ruled)),
    ]


def summary_table(tasks: list[str], cells: list[Cell]) -> list[str]:
    """Per rule, over tasks: distinct plans among the 9 samples of each task."""
    lines = ["| rule | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for rule, *_ in RULES:
        counts = [
            str(len({tuple(c.variant.block_ranks) for c in cells if (c.task, c.rule) == (t, rule)}))
            for t in tasks
        ]
        lines.append(f"| {rule} | " + " | ".join(counts) + " |")
    return lines


def write_outputs(tasks: list[str], cells: list[Cell], out: Path, seconds: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan_ablation.json").write_text(
        json.dumps([{**asdict(c), "variant": asdict(c.variant)} for c in cells], indent=1) + "\n"
    )
    lines = [
        "# Plan ablation: how GeLoRA's plan moves with pooling, sample and gap rule",
        "",
        "Written by `python experiments/plan_ablation.py` (issue 26) from the ID profiles of "
        "all-MiniLM-L6-v2 at the first CPU table's settings (`experiment=setup/table_cpu`: 2,400 "
        "training rows, 64 tokens, a 2,000-text ID sample, TwoNN with 5 half-sample resamples). "
        f"No training. {len(cells)} plans in {seconds / 60:.1f} minutes on this machine's CPU. "
        "Every profile and plan: `plan_ablation.json`.",
        "",
        "Rules (columns): `paper` is the unbudgeted rule (rank = max(ceil(gap), 0) + 1); `r2` "
        "spends the table's budget (uniform rank 2, 82,944 parameters) with the remainder above "
        "the bounds shared by `gap` (today's default), `id` or `waterfill` (lowest rank first). "
        "`k=1` counts a gap only beyond one standard deviation of its resampled estimate "
        "(`rank_policy.noise_k`); `k=0` is the paper. Samples (rows): `estimator.pooling` "
        "(mean over tokens, the [CLS] token, one seeded non-special token per text) and "
        "`estimator.sample_seed` (which 2,000 of the 2,400 training texts).",
        "",
        "![Rank per block under three rules, by pooling and sample seed](plan_ablation.png)",
        "",
        "## Distinct plans among the 9 samples (3 poolings x 3 seeds), per rule and task",
        "",
        "1 means the rule gives the same plan whatever the pooling and sample; 9 means every "
        "sample gives its own.",
        "",
        *summary_table(tasks, cells),
        "",
        "## Per task",
        "",
    ]
    for task in tasks:
        lines += task_section(task, cells)
    path = out / "plan_ablation.md"
    reading = path.read_text().partition(READING)[2] if path.exists() else ""
    if reading:  # the hand-written reading of the numbers stays, for a person to re-check
        lines += [READING + reading.rstrip("\n")]
    path.write_text("\n".join(lines) + "\n")


READING = "## What it shows"


PLOTTED_RULES = ("paper k=0", "r2 gap k=0", "r2 waterfill k=0")


def plot_ablation(tasks: list[str], cells: list[Cell], path: Path) -> Path:
    """``plan_ablation.png``: per task (rows) and rule (columns), each sample's rank per block
    (a row of the panel per pooling and seed): a stable rule shows the same row nine times."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = list(itertools.product(POOLINGS, SAMPLE_SEEDS))
    top = max(max(c.variant.block_ranks) for c in cells if c.rule in PLOTTED_RULES)
    figure, axes = plt.subplots(
        len(tasks), len(PLOTTED_RULES), figsize=(3.2 * len(PLOTTED_RULES), 2.1 * len(tasks)),
        squeeze=False, sharex=True,
    )  # fmt: skip
    for row, task in enumerate(tasks):
        for column, rule in enumerate(PLOTTED_RULES):
            by_sample = {
                (c.pooling, c.sample_seed): c.variant.block_ranks
                for c in cells
                if (c.task, c.rule) == (task, rule)
            }
            grid = [by_sample[sample] for sample in samples]
            axis = axes[row][column]
            image = axis.imshow(grid, cmap="viridis", vmin=0, vmax=top, aspect="auto")
            for y, ranks in enumerate(grid):
                for x, rank in enumerate(ranks):
                    shade = "k" if rank > 0.6 * top else "w"
                    axis.text(x, y, str(rank), ha="center", va="center", fontsize=6, color=shade)
            labels = [f"{p} s{s}" for p, s in samples] if column == 0 else []
            axis.set_yticks(range(len(samples)) if column == 0 else [], labels, fontsize=6)
            axis.set_xticks(range(len(grid[0])), [str(b) for b in range(len(grid[0]))], fontsize=6)
            if row == 0:
                axis.set_title(rule, fontsize=8)
            if column == 0:
                axis.set_ylabel(task, fontsize=8)
    for axis in axes[-1]:
        axis.set_xlabel("block", fontsize=7)
    figure.colorbar(image, ax=axes, shrink=0.6, label="rank")
    figure.suptitle("GeLoRA rank per block, by pooling and sample seed (all-MiniLM-L6-v2)", y=0.92)
    figure.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(figure)
    return path


def cells_from_json(path: Path) -> list[Cell]:
    """The cells ``plan_ablation.json`` holds (to redraw or rewrite without recomputing)."""
    rows = json.loads(path.read_text())
    return [Cell(**{**row, "variant": PlanVariant(**row["variant"])}) for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--out", type=Path, default=Path("experiments/results"))
    parser.add_argument(
        "--plot-only", action="store_true", help="redraw plan_ablation.png from the saved JSON"
    )
    args = parser.parse_args()
    tasks = args.tasks.split(",")
    logging.basicConfig(level=logging.WARNING)
    if args.plot_only:
        cells = cells_from_json(args.out / "plan_ablation.json")
    else:
        started = time.perf_counter()
        cells = run(tasks)
        write_outputs(tasks, cells, args.out, time.perf_counter() - started)
        print(f"wrote {args.out / 'plan_ablation.md'} ({len(cells)} plans)")
    print(f"drew {plot_ablation(tasks, cells, args.out / 'plan_ablation.png')}")


if __name__ == "__main__":
    main()
