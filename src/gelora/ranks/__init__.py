"""Rank policies, parameter budgets, the LoRA scaling rule and the rank plan they produce.

Nothing here touches a model: a policy maps target shapes (and an ID profile, and a budget) to a
``RankPlan``; ``gelora.methods`` puts plans into models.
"""

from gelora.ranks.budget import (
    Budget,
    allocate_ranks,
    budget_from_config,
    equivalent_uniform_rank,
    rank_unit,
)
from gelora.ranks.plan import AdapterSpec, RankPlan, TargetModule
from gelora.ranks.policies import (
    GeLoRAPolicy,
    HeadOnlyPolicy,
    IDProportionalPolicy,
    MatchedUniformPolicy,
    MeasuredIDs,
    RandomPolicy,
    RankPolicy,
    ShuffledPolicy,
    UniformPolicy,
    block_scores,
    gelora_block_ranks,
    noise_aware_gaps,
)
from gelora.ranks.scaling import Scaling

__all__ = [
    "AdapterSpec",
    "Budget",
    "GeLoRAPolicy",
    "HeadOnlyPolicy",
    "IDProportionalPolicy",
    "MatchedUniformPolicy",
    "MeasuredIDs",
    "RandomPolicy",
    "RankPlan",
    "RankPolicy",
    "Scaling",
    "ShuffledPolicy",
    "TargetModule",
    "UniformPolicy",
    "allocate_ranks",
    "block_scores",
    "budget_from_config",
    "equivalent_uniform_rank",
    "gelora_block_ranks",
    "noise_aware_gaps",
    "rank_unit",
]
