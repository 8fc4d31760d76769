"""Rank policies: from targets (and intrinsic dimensions) to a rank plan.

A policy is a small class built by Hydra from ``conf/rank_policy/<name>.yaml``; ``plan`` is its
one job. Adding a policy means one such class and one config file.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Protocol

from gelora.ranks.plan import RankPlan, TargetModule


class RankPolicy(Protocol):
    name: str
    needs_intrinsic_dims: bool

    def plan(
        self, targets: Sequence[TargetModule], intrinsic_dims: Sequence[float] | None
    ) -> RankPlan: ...


def _blocks_of(targets: Sequence[TargetModule]) -> list[int]:
    if not targets:
        raise ValueError("no target modules to adapt")
    return sorted({t.block for t in targets})


def _checked_alpha_over_rank(value: float) -> float:
    if value <= 0:
        raise ValueError(f"rank_policy.alpha_over_rank must be > 0, got {value}")
    return value


def gelora_block_ranks(intrinsic_dims: Sequence[float], offset: int = 1) -> list[int]:
    """GeLoRA's rule, ``r_i = max(ceil(d_i - d_{i-1}), 0) + offset`` (arXiv 2412.09250).

    ``intrinsic_dims`` holds ``L + 1`` values, the embeddings output first, so block ``i``
    (0-based) maps hidden state ``i`` to hidden state ``i + 1``. The ID gap bounds from below the
    rank the block's update needs; ``offset`` (1 in the paper) keeps every block adaptable.
    """
    if offset < 0:
        raise ValueError(f"rank_policy.offset must be >= 0, got {offset}")
    if len(intrinsic_dims) < 2:
        raise ValueError(
            "need the IDs of at least two hidden-state layers (embeddings and one block)"
        )
    for d in intrinsic_dims:
        if not math.isfinite(d):
            raise ValueError(f"intrinsic dimensions must be finite, got {list(intrinsic_dims)}")
    return [
        max(math.ceil(after - before), 0) + offset
        for before, after in itertools.pairwise(intrinsic_dims)
    ]


class GeLoRAPolicy:
    """Per-block ranks from intrinsic-dimension gaps; every matrix of a block shares its rank.

    ``alpha / rank`` is held constant at ``alpha_over_rank`` across blocks (the paper's choice,
    32), so alpha grows with rank and every block's update has the same scaling.
    """

    name = "gelora"
    needs_intrinsic_dims = True

    def __init__(self, offset: int = 1, alpha_over_rank: float = 32.0):
        if offset < 0:
            raise ValueError(f"rank_policy.offset must be >= 0, got {offset}")
        self.offset = offset
        self.alpha_over_rank = _checked_alpha_over_rank(alpha_over_rank)

    def plan(
        self, targets: Sequence[TargetModule], intrinsic_dims: Sequence[float] | None
    ) -> RankPlan:
        blocks = _blocks_of(targets)
        if intrinsic_dims is None:
            raise ValueError("the gelora policy needs intrinsic dimensions")
        ranks = gelora_block_ranks(intrinsic_dims, self.offset)
        if blocks[-1] >= len(ranks):
            raise ValueError(
                f"targets reach block {blocks[-1]} but the ID profile has only "
                f"{len(intrinsic_dims)} layers ({len(ranks)} blocks)"
            )
        return RankPlan.from_ranks(
            self.name, targets, dict(enumerate(ranks)), lambda r: self.alpha_over_rank * r
        )


class UniformPolicy:
    """Plain LoRA: the same rank and alpha for every target module (Hu et al. 2021)."""

    name = "lora"
    needs_intrinsic_dims = False

    def __init__(self, rank: int = 8, alpha_over_rank: float = 2.0):
        if rank < 1:
            raise ValueError(f"rank_policy.rank must be >= 1, got {rank}")
        self.rank = rank
        self.alpha_over_rank = _checked_alpha_over_rank(alpha_over_rank)

    def plan(
        self, targets: Sequence[TargetModule], intrinsic_dims: Sequence[float] | None = None
    ) -> RankPlan:
        blocks = _blocks_of(targets)
        return RankPlan.from_ranks(
            self.name,
            targets,
            dict.fromkeys(blocks, self.rank),
            lambda r: self.alpha_over_rank * r,
        )
