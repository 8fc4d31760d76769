"""Budgets: every policy spends what it is given, to within one rank unit, and never more."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from gelora.models import find_target_modules
from gelora.ranks import (
    Budget,
    GeLoRAPolicy,
    IDProportionalPolicy,
    RandomPolicy,
    TargetModule,
    UniformPolicy,
    allocate_ranks,
    rank_unit,
)
from tests.tiny_models import BERT_TARGETS

# An ID profile shaped like the default run's (embeddings, then six blocks).
PROFILE = [9.1, 10.4, 11.0, 10.2, 12.3, 15.6, 14.0]


@pytest.fixture(scope="module")
def minilm_targets() -> list[TargetModule]:
    """all-MiniLM-L6-v2's shapes (6 blocks, width 384, FFN 1536), built on the meta device."""
    config = BertConfig(
        hidden_size=384, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=12
    )
    with torch.device("meta"):
        model = BertForSequenceClassification(config)
    return find_target_modules(model, "bert.encoder.layer", BERT_TARGETS)


def test_rank_budget_counts_uniform_lora_exactly(minilm_targets):
    # q, k, v, o: 384 + 384; FFN in and out: 384 + 1536; six blocks.
    per_rank = 6 * (4 * 768 + 2 * 1920)
    assert Budget(rank=2).n_params(minilm_targets) == 2 * per_rank == 82_944
    assert Budget(params=1000).n_params(minilm_targets) == 1000
    assert rank_unit(minilm_targets) == 768


@pytest.mark.parametrize("kwargs", [{}, {"rank": 2, "params": 5}, {"rank": 0}, {"params": -1}])
def test_bad_budgets_are_refused(kwargs):
    with pytest.raises(ValueError, match="budget"):
        Budget(**kwargs)


POLICIES = {
    "lora": lambda: UniformPolicy(),
    "gelora": lambda: GeLoRAPolicy(),
    "gelora_id_score": lambda: GeLoRAPolicy(score="id"),
    "id_proportional": lambda: IDProportionalPolicy(),
    "random": lambda: RandomPolicy(seed=3),
}


@pytest.mark.parametrize("policy_name", POLICIES)
@pytest.mark.parametrize("rank", [1, 2, 4, 8])
def test_every_policy_lands_within_one_rank_unit_of_the_budget(minilm_targets, policy_name, rank):
    budget = Budget(rank=rank)
    plan = POLICIES[policy_name]().plan(minilm_targets, PROFILE, budget)
    target = budget.n_params(minilm_targets)
    assert target - rank_unit(minilm_targets) < plan.trainable_adapter_params <= target
    assert len(plan.adapters) == len(minilm_targets)  # every matrix keeps at least one rank


@pytest.mark.parametrize("policy_name", POLICIES)
def test_parameter_budgets_are_met_too(minilm_targets, policy_name):
    budget = Budget(params=100_000)
    plan = POLICIES[policy_name]().plan(minilm_targets, PROFILE, budget)
    assert 100_000 - 768 < plan.trainable_adapter_params <= 100_000


def test_budgeted_gelora_keeps_the_gap_lower_bound_and_follows_the_gaps(minilm_targets):
    unbudgeted = GeLoRAPolicy().plan(minilm_targets, PROFILE)
    lower = unbudgeted.block_ranks(6)
    assert lower == [3, 2, 1, 4, 5, 1]  # max(ceil(gap), 0) + 1
    plan = GeLoRAPolicy().plan(minilm_targets, PROFILE, Budget(rank=8))
    ranks = plan.ranks
    for target in minilm_targets:
        assert ranks[target.name] >= lower[target.block]
    # The largest gap (block 3 -> 4: 3.3) gets the most rank, blocks without a gain the least.
    block_totals = [sum(r for name, r in ranks.items() if f"layer.{b}." in name) for b in range(6)]
    assert max(block_totals) == block_totals[4]
    assert block_totals[2] == block_totals[5] == min(block_totals)


def test_budget_below_the_lower_bound_keeps_one_rank_and_says_so(minilm_targets):
    plan = GeLoRAPolicy().plan(minilm_targets, PROFILE, Budget(rank=1))
    assert set(plan.ranks.values()) == {1}
    assert any("lower bound" in note for note in plan.notes)


def test_random_control_depends_on_its_seed_only(minilm_targets):
    first = RandomPolicy(seed=1).plan(minilm_targets, None, Budget(rank=4))
    assert first == RandomPolicy(seed=1).plan(minilm_targets, None, Budget(rank=4))
    assert first.ranks != RandomPolicy(seed=2).plan(minilm_targets, None, Budget(rank=4)).ranks


def test_controls_need_a_budget(minilm_targets):
    with pytest.raises(ValueError, match="needs a budget"):
        RandomPolicy().plan(minilm_targets, None)
    with pytest.raises(ValueError, match="needs a budget"):
        IDProportionalPolicy().plan(minilm_targets, PROFILE)


def test_id_proportional_ranks_follow_the_ids(minilm_targets):
    plan = IDProportionalPolicy().plan(minilm_targets, PROFILE, Budget(rank=8))
    query = [plan.ranks[f"bert.encoder.layer.{b}.attention.self.query"] for b in range(6)]
    assert query.index(max(query)) == 4  # block 4 outputs the largest ID (15.6)


def test_allocator_is_proportional_and_deterministic():
    targets = [TargetModule(f"m{i}", i, 10, 10) for i in range(3)]  # 20 params per rank
    ranks = allocate_ranks(targets, 20 * 13, [1.0, 2.0, 7.0], [1, 1, 1])
    assert sum(ranks) == 13 and ranks == [2, 3, 8]
    assert allocate_ranks(targets, 20 * 13, [1.0, 2.0, 7.0], [1, 1, 1]) == ranks
    with pytest.raises(ValueError, match="more than the budget"):
        allocate_ranks(targets, 50, [1, 1, 1], [1, 1, 1])
    with pytest.raises(ValueError, match="scores"):
        allocate_ranks(targets, 200, [1, float("nan"), 1])
