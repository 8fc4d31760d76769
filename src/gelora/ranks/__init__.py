"""Rank policies, parameter budgets and the rank plan they produce."""

from gelora.ranks.budget import Budget, allocate_ranks, budget_from_config, rank_unit
from gelora.ranks.peft_policies import AdaLoRAPolicy, EvaPolicy
from gelora.ranks.plan import AdapterSpec, RankPlan, TargetModule
from gelora.ranks.policies import (
    GeLoRAPolicy,
    IDProportionalPolicy,
    RandomPolicy,
    RankPolicy,
    UniformPolicy,
    block_scores,
    gelora_block_ranks,
)

__all__ = [
    "AdaLoRAPolicy",
    "AdapterSpec",
    "Budget",
    "EvaPolicy",
    "GeLoRAPolicy",
    "IDProportionalPolicy",
    "RandomPolicy",
    "RankPlan",
    "RankPolicy",
    "TargetModule",
    "UniformPolicy",
    "allocate_ranks",
    "block_scores",
    "budget_from_config",
    "gelora_block_ranks",
    "rank_unit",
]
