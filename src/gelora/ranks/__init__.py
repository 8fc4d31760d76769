"""Rank allocation, in one place: every allocator, parameter budgets, the LoRA scaling rule and the
rank plan they produce.

Every allocator is an ``allocator.Allocator``: scores per block or per target matrix, spent under
the budget by ``budget.allocate_ranks``. The scores come from the ID profile (GeLoRA, uniform
LoRA and the budgeted policies in ``policies``; the controls in ``controls``), or from the frozen
model on a few training batches (``scoring.ScoringAllocator``: the gradient allocators in
``gradients``, ``weight_spectrum``, ``hessian``, ``importance``, ``stable_rank``), cached, timed
and recorded. The one shuffled control of any allocator is ``controls.ShuffledPolicy``; the
matrix-type control (attention only, MLP only) is ``matrix_types``.
``gelora.methods.ours.as_method`` puts any plan into our LoRA layers; the
``rank_policy._target_`` of every ``conf/method/`` file names its allocator from here.
"""

from gelora.ranks.allocator import Allocator
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
from gelora.ranks.gradients import FisherAllocator, GradientSpectrumAllocator
from gelora.ranks.hessian import HessianTraceAllocator
from gelora.ranks.importance import ImportanceAllocator
from gelora.ranks.matrix_types import MatrixTypePolicy
from gelora.ranks.plan import AdapterSpec, RankPlan, TargetModule
from gelora.ranks.policies import (
    GeLoRAPolicy,
    MeasuredIDs,
    RankPolicy,
    UniformPolicy,
    block_scores,
    gelora_block_ranks,
    noise_aware_gaps,
)
from gelora.ranks.scaling import Scaling
from gelora.ranks.scoring import ScoringAllocator
from gelora.ranks.scoring_inputs import ScoreInputs
from gelora.ranks.stable_rank import StableRankAllocator
from gelora.ranks.weight_spectrum import WeightSpectrumAllocator

__all__ = [
    "AdapterSpec",
    "Allocator",
    "Budget",
    "FisherAllocator",
    "GeLoRAPolicy",
    "GradientSpectrumAllocator",
    "HeadOnlyPolicy",
    "HessianTraceAllocator",
    "IDProportionalPolicy",
    "ImportanceAllocator",
    "MatchedUniformPolicy",
    "MatrixTypePolicy",
    "MeasuredIDs",
    "RandomPolicy",
    "RankPlan",
    "RankPolicy",
    "Scaling",
    "ScoreInputs",
    "ScoringAllocator",
    "ShuffledPolicy",
    "StableRankAllocator",
    "TargetModule",
    "UniformPolicy",
    "WeightSpectrumAllocator",
    "allocate_ranks",
    "block_scores",
    "budget_from_config",
    "equivalent_uniform_rank",
    "gelora_block_ranks",
    "noise_aware_gaps",
    "rank_unit",
]
