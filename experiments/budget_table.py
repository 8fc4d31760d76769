"""Every rank policy at every budget on the default model, side by side, with exact counts.

    python experiments/budget_table.py [--ranks 1 2 4 8] [--out experiments/results/budget_table.md]

Uses the real default setup and the run's own stages (``gelora.stages``): all-MiniLM-L6-v2 (six
maps per block), the ID profile of 2,000 Rotten Tomatoes training snippets (TwoNN, mean pooling,
seed 0) and, for EVA, peft's SVD of the target inputs on training batches. For each budget
``rank`` (what uniform LoRA r=rank costs) it plans every policy with ``make_plan`` and prints the
adapter parameters, their distance from the budget in rank units (768 parameters: one rank of a
384 -> 384 map) and the total rank. AdaLoRA's row is its final budget (it starts at init_r = 1.5 x
that and prunes); EVA counts its budget in rank units, as peft does, so its parameters move when
ranks move between differently shaped matrices.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hydra import compose, initialize_config_dir

from gelora.atomic import write_text_atomic
from gelora.config.build import build
from gelora.ranks import Budget, rank_unit
from gelora.stages.backbone import load_backbone
from gelora.stages.fit import build_datamodule
from gelora.stages.plan import load_method, load_scaling, make_plan
from gelora.stages.profile import EstimatorSettings, estimate_profile, id_sample_size
from gelora.stages.task import load_task
from gelora.train import config_dir

POLICIES = ["lora", "gelora", "id_proportional", "random", "adalora", "eva"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--out", type=Path, default=Path("experiments/results/budget_table.md"))
    args = parser.parse_args()

    with initialize_config_dir(config_dir(), version_base=None):
        cfg = compose("train", overrides=["paths.output_dir=."])
        policy_cfgs = {
            name: compose("train", overrides=[f"method={name}", "paths.output_dir=."])
            for name in POLICIES
        }
    task = load_task(cfg.task)
    backbone = load_backbone(cfg.model, task, budget=None)
    sample = id_sample_size(cfg.estimator.n_samples, task)
    profile = estimate_profile(
        backbone,
        task,
        EstimatorSettings.from_config(cfg.estimator),
        build(cfg.estimator.id, "estimator.id"),
        sample,
        max_length=cfg.task.max_length,
    ).profile
    datamodule = build_datamodule(task, backbone, cfg.task, cfg.seed)

    def train_batches():
        datamodule.setup("fit")
        return datamodule.train_dataloader()

    targets = list(backbone.targets)
    unit = rank_unit(targets)
    n_blocks = backbone.n_blocks
    rows = []
    for rank in args.ranks:
        budget = Budget(rank=rank)
        n_params = budget.n_params(targets)
        for name in POLICIES:
            method = load_method(
                policy_cfgs[name].rank_policy, load_scaling(policy_cfgs[name].lora)
            )
            plan = make_plan(method, backbone, profile, budget, train_batches=train_batches).plan
            params = plan.trainable_adapter_params
            rows.append(
                f"| {rank} | {n_params:,} | {name} | {params:,} | {(params - n_params) / unit:+.2f}"
                f" | {plan.total_rank} | {' '.join(map(str, plan.block_ranks(n_blocks)))} |"
            )
    gelora = load_method(
        policy_cfgs["gelora"].rank_policy, load_scaling(policy_cfgs["gelora"].lora)
    )
    unbudgeted = make_plan(gelora, backbone, profile, None, train_batches=train_batches).plan
    lines = [
        "# Adapter parameters of every policy at every budget (all-MiniLM-L6-v2, 36 matrices)",
        "",
        f"ID profile (TwoNN, mean pooling, 2,000 training snippets): "
        f"{', '.join(f'{d:.2f}' for d in profile.dimensions)}",
        f"GeLoRA's own rule, unbudgeted: block ranks {unbudgeted.block_ranks(n_blocks)}, "
        f"{unbudgeted.trainable_adapter_params:,} parameters.",
        f"One rank unit = {unit} parameters (one rank of a 384 -> 384 map).",
        "",
        "| budget rank | budget params | policy | adapter params | off (rank units) "
        "| total rank | block ranks (max per block) |",
        "|---:|---:|---|---:|---:|---:|---|",
        *rows,
    ]
    text = "\n".join(lines) + "\n"
    write_text_atomic(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
