"""Rank policies, parameter budgets, the LoRA scaling rule and the rank plan they produce.

Nothing here touches a model: a policy maps target shapes (and an ID profile, and a budget) to a
``RankPlan``; ``gelora.methods`` puts plans into models. GeLoRA, uniform LoRA and the budgeted
policies' base are in ``policies``, the controls in ``controls``; the ``rank_policy._target_`` of
every ``conf/method/`` file names them from here.
"""

from gelora.ranks.budget import (
    Budget,
    allocate_ranks,
    budget_from_config,
    equivalent_uniform_rank,
    rank_unit,
)
from gelora.ranks.controls import (
    HeadOnlyPolicy,
    IDProportionalPolicy,
    MatchedUniformPolicy,
    RandomPolicy,
    ShuffledPolicy,
)
from gelora.ranks.plan import AdapterSpec, RankPlan, TargetModule
from gelora.ranks.policies import (
    BudgetedPolicy,
    GeLoRAPolicy,
    MeasuredIDs,
    RankPolicy,
    UniformPolicy,
    block_scores,
    gelora_block_ranks,
    noise_aware_gaps,
)
from gelora.ranks.scaling import Scaling

__all__ = [
    "AdapterSpec",
    "Budget",
    "BudgetedPolicy",
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
