"""Every rank policy at every budget on the default model, side by side, with exact counts.

    python experiments/budget_table.py [--ranks 1 2 4 8] [--out experiments/results/budget_table.md]

Uses the real default setup: all-MiniLM-L6-v2 (six maps per block), the ID profile of 2,000
Rotten Tomatoes training snippets (TwoNN, mean pooling, seed 0) and, for EVA, peft's SVD of the
target inputs on training batches. For each budget ``rank`` (what uniform LoRA r=rank costs)
it plans every policy and prints the adapter parameters, their distance from the budget in rank
units (768 parameters: one rank of a 384 -> 384 map) and the total rank. AdaLoRA's row is its
final budget (it starts at init_r = 1.5 x that and prunes); EVA counts its budget in rank units,
as peft does, so its parameters move when ranks move between differently shaped matrices.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from gelora.data.datamodule import TextClassificationDataModule
from gelora.models import find_target_modules, load_classifier
from gelora.pipeline import estimate_profile, load_task
from gelora.ranks import Budget, rank_unit
from gelora.train import config_dir

POLICIES = ["lora", "gelora", "id_proportional", "random", "adalora", "eva"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--out", type=Path, default=Path("experiments/results/budget_table.md"))
    args = parser.parse_args()

    with initialize_config_dir(config_dir(), version_base=None):
        cfg = compose("train", overrides=["hydra.run.dir=.", "paths.output_dir=."])
        policy_cfgs = {
            name: compose("train", overrides=[f"rank_policy={name}", "paths.output_dir=."])
            for name in POLICIES
        }
    task = load_task(cfg.task, cfg.seed)
    model, tokenizer = load_classifier(asset=cfg.model.asset, num_labels=task.num_labels)
    targets = find_target_modules(model, cfg.model.blocks, cfg.model.target_modules)
    profile = estimate_profile(model, tokenizer, task, cfg)
    datamodule = TextClassificationDataModule(task, tokenizer, batch_size=cfg.task.batch_size)
    datamodule.setup("fit")
    unit = rank_unit(targets)

    rows = []
    for rank in args.ranks:
        budget = Budget(rank=rank)
        n_params = budget.n_params(targets)
        for name in POLICIES:
            policy = instantiate(policy_cfgs[name].rank_policy)
            if getattr(policy, "needs_activations", False):
                policy.fit_activations(model, datamodule.train_dataloader(), targets, budget)
            plan = policy.plan(targets, profile.dimensions, budget)
            params = plan.trainable_adapter_params
            rows.append(
                f"| {rank} | {n_params:,} | {name} | {params:,} | {(params - n_params) / unit:+.2f}"
                f" | {plan.total_rank} | {' '.join(map(str, plan.block_ranks(6)))} |"
            )
        unbudgeted = instantiate(policy_cfgs["gelora"].rank_policy).plan(
            targets, profile.dimensions
        )
    lines = [
        "# Adapter parameters of every policy at every budget (all-MiniLM-L6-v2, 36 matrices)",
        "",
        f"ID profile (TwoNN, mean pooling, 2,000 training snippets): "
        f"{', '.join(f'{d:.2f}' for d in profile.dimensions)}",
        f"GeLoRA's own rule, unbudgeted: block ranks {unbudgeted.block_ranks(6)}, "
        f"{unbudgeted.trainable_adapter_params:,} parameters.",
        f"One rank unit = {unit} parameters (one rank of a 384 -> 384 map).",
        "",
        "| budget rank | budget params | policy | adapter params | off (rank units) "
        "| total rank | block ranks (max per block) |",
        "|---:|---:|---|---:|---:|---:|---|",
        *rows,
    ]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
