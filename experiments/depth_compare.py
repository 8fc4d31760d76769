"""Do GeLoRA's plans differ more from uniform LoRA at depth 12 than at depth 6? (issue 42, step 3)

    python experiments/depth_compare.py \
        experiments/results/table_cpu3/budget_check/budget_check.json \
        experiments/results/mpnet_plans/budget_check/budget_check.json \
        --labels all-MiniLM-L6-v2,all-mpnet-base-v2 --out experiments/results/mpnet_plans/depth.md

Reads two ``budget_check.py`` outputs (the same tasks, budgets, rules and sample seeds, mean
pooling) and compares, per budget rank and remainder rule, the **share of the budget a plan moves
off uniform**: rank units above uniform's plan divided by uniform's units (blocks x rank), so that
6 and 12 blocks compare on one scale. Per task: the share at sample seed 0 (the plan a table
trains), its mean over the seeds, and the distinct plans over the seeds. Over the tasks both
checks hold: the mean paired difference of the seed-mean shares (second minus first, percentage
points) with a t-interval over the tasks (the tasks are the level at which the data are drawn),
and on how many tasks the second model's share is larger. Plans only, no training.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from gelora.table.paired import t_interval


@dataclass(frozen=True)
class Share:
    """One task's plans under one model, budget and rule, over the sample seeds."""

    at_first_seed: float  # percent of uniform's units moved, sample seed 0
    mean: float  # percent, averaged over the seeds
    distinct_plans: int
    seeds: int


def shares(cells: list[dict]) -> dict[tuple[int, str, str], Share]:
    """(rank, score, task) -> Share, from a budget check's cells (mean pooling only)."""
    grouped: dict[tuple[int, str, str], list[dict]] = {}
    for cell in cells:
        if cell.get("pooling", "mean") == "mean":
            grouped.setdefault((cell["rank"], cell["score"], cell["task"]), []).append(cell)
    out = {}
    for key, group in grouped.items():
        group.sort(key=lambda c: c["sample_seed"])
        percent = [100 * c["units_moved"] / c["uniform_units"] for c in group]
        plans = {tuple(c["block_ranks"]) for c in group}
        out[key] = Share(percent[0], statistics.fmean(percent), len(plans), len(group))
    return out


@dataclass(frozen=True)
class Difference:
    """Second minus first, seed-mean shares, over the tasks both checks hold."""

    tasks: int
    mean: float
    interval: tuple[float, float] | None  # 95% t-interval; None under 2 tasks
    second_larger: int


def paired_difference(first: list[float], second: list[float]) -> Difference:
    differences = [b - a for a, b in zip(first, second, strict=True)]
    interval = t_interval(differences) if len(differences) >= 2 else None
    mean = statistics.fmean(differences)
    return Difference(len(differences), mean, interval, sum(d > 0 for d in differences))


def _cell(share: Share | None) -> str:
    if share is None:
        return "-"
    return f"{share.at_first_seed:.1f} / {share.mean:.1f} ({share.distinct_plans} of {share.seeds})"


def page(first: list[dict], second: list[dict], labels: tuple[str, str]) -> str:
    a, b = shares(first), shares(second)
    tasks = list(dict.fromkeys(c["task"] for c in first + second))
    rules = sorted({k[:2] for k in a} & {k[:2] for k in b})
    lines = [
        f"# Plans at depth: {labels[0]} against {labels[1]}",
        "",
        "Written by `python experiments/depth_compare.py` from two `budget_check.json` files "
        "(mean pooling). A cell: percent of the budget's rank units moved off uniform at sample "
        "seed 0 / averaged over the seeds (distinct plans of seeds). The last column: the mean "
        f"paired difference over the tasks both hold ({labels[1]} minus {labels[0]}, percentage "
        "points of the budget) with its 95% t-interval over the tasks, and on how many tasks "
        f"{labels[1]}'s plans move more.",
        "",
    ]
    for rank, score in rules:
        both = [t for t in tasks if (rank, score, t) in a and (rank, score, t) in b]
        difference = paired_difference(
            [a[rank, score, t].mean for t in both], [b[rank, score, t].mean for t in both]
        )
        low, high = difference.interval or (math.nan, math.nan)
        lines += [
            f"## Budget rank {rank}, remainder `{score}`",
            "",
            f"| task | {labels[0]} | {labels[1]} |",
            "|---|---|---|",
            *(f"| {t} | {_cell(a.get((rank, score, t)))} | {_cell(b.get((rank, score, t)))} |"
              for t in tasks),
            "",
            f"Over {difference.tasks} tasks: {difference.mean:+.1f} points [{low:+.1f}, "
            f"{high:+.1f}]; {labels[1]} moves more on {difference.second_larger} of "
            f"{difference.tasks}.",
            "",
        ]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--labels", default="first,second", type=lambda s: tuple(s.split(",")))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    for path in (args.first, args.second):
        if not path.is_file():
            raise SystemExit(f"depth_compare: {path}: no such budget check (budget_check.json)")
    text = page(json.loads(args.first.read_text()), json.loads(args.second.read_text()),
                args.labels)  # fmt: skip
    if args.out is not None:
        if args.out.exists() and args.out.read_text() != text + "\n":
            print(f"depth_compare: replacing {args.out} (it is written only by this script)")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
