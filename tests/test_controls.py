"""Rows a reviewer asks for: head only, shuffled placement, LoRA at GeLoRA's cost, EVA in params."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from gelora.methods.eva import trim_to_parameters
from gelora.ranks import (
    Budget,
    GeLoRAPolicy,
    HeadOnlyPolicy,
    MatchedUniformPolicy,
    ShuffledPolicy,
    TargetModule,
    rank_unit,
)
from tests.helpers import TINY, run_in_process

DIMS = [10.0, 30.0, 31.0, 18.0, 45.0, 46.0, 20.0]  # six blocks with uneven gaps


def targets(n_blocks: int = 6) -> list[TargetModule]:
    return [
        TargetModule(f"enc.{b}.{m}", b, i, o)
        for b in range(n_blocks)
        for m, i, o in (("q", 16, 16), ("ffn", 16, 64))
    ]


def block_pattern(plan) -> list[tuple[int, ...]]:
    return [
        tuple(a.rank for a in plan.adapters if a.block == b)
        for b in range(max(a.block for a in plan.adapters) + 1)
    ]


def test_head_only_plans_no_adapter():
    plan = HeadOnlyPolicy().plan(targets(), None, Budget(rank=2))
    assert plan.adapters == () and plan.trainable_adapter_params == 0


@pytest.mark.parametrize("seed", range(5))
def test_shuffled_moves_budgeted_geloras_block_ranks_and_keeps_their_cost(seed):
    budget = Budget(rank=3)
    gelora = GeLoRAPolicy().plan(targets(), DIMS, budget)
    shuffled = ShuffledPolicy(seed=seed).plan(targets(), DIMS, budget)
    assert shuffled.trainable_adapter_params == gelora.trainable_adapter_params
    assert Counter(block_pattern(shuffled)) == Counter(block_pattern(gelora))
    assert block_pattern(shuffled) != block_pattern(gelora)  # placement moved


def test_shuffled_draws_from_its_seed():
    budget = Budget(rank=3)
    plans = {
        tuple(block_pattern(ShuffledPolicy(seed=s).plan(targets(), DIMS, budget))) for s in range(6)
    }
    assert len(plans) > 1
    again = ShuffledPolicy(seed=3).plan(targets(), DIMS, budget)
    assert again == ShuffledPolicy(seed=3).plan(targets(), DIMS, budget)


def test_lora_at_geloras_cost_is_uniform_and_within_one_rank_unit():
    cost = GeLoRAPolicy().plan(targets(), DIMS).trainable_adapter_params
    plan = MatchedUniformPolicy().plan(targets(), DIMS)
    spent = plan.trainable_adapter_params
    assert 0 <= cost - spent < rank_unit(targets())
    ranks = [a.rank for a in plan.adapters]
    assert max(ranks) - min(ranks) <= 1  # uniform, plus single units to meet the count


def test_eva_is_trimmed_to_the_budget_in_parameters():
    tgts = targets()
    n_params = Budget(rank=2).n_params(tgts)
    # rank units drifted to the wide matrices, as EVA's variance order may put them
    drifted = [1 if t.out_features == 16 else 3 for t in tgts]
    assert sum(drifted) == 2 * len(tgts)
    cost = sum(r * t.lora_params(1) for r, t in zip(drifted, tgts, strict=True))
    assert cost > n_params
    trimmed = trim_to_parameters(tgts, drifted, n_params)
    spent = sum(r * t.lora_params(1) for r, t in zip(trimmed, tgts, strict=True))
    widest_unit = max(t.lora_params(1) for t in tgts)  # the matrix trimmed last: an FFN one
    assert n_params - widest_unit < spent <= n_params
    assert all(t <= d for t, d in zip(trimmed, drifted, strict=True))
    assert trim_to_parameters(tgts, [2] * len(tgts), n_params) == [2] * len(tgts)


def test_head_only_trains_and_records_a_run_without_adapters(tmp_path):
    # in process: the record is under test, not the command line (test_train_end_to_end's)
    returned = run_in_process(tmp_path, *TINY, "method=head_only", "budget.rank=2", "logger=none")
    results = json.loads((tmp_path / "results.json").read_text())
    assert returned["status"] == "completed"
    assert results["trainable_adapter_params"] == 0 and results["adapter_dir"] is None
    assert results["trainable_params"] > 0 and "test/accuracy" in results["metrics"]
    assert results["best_step"] is not None and results["best_step"] <= results["optimizer_steps"]
