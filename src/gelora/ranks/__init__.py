"""Rank policies and the rank plan they produce."""

from gelora.ranks.plan import AdapterSpec, RankPlan, TargetModule
from gelora.ranks.policies import GeLoRAPolicy, RankPolicy, UniformPolicy, gelora_block_ranks

__all__ = [
    "AdapterSpec",
    "GeLoRAPolicy",
    "RankPlan",
    "RankPolicy",
    "TargetModule",
    "UniformPolicy",
    "gelora_block_ranks",
]
