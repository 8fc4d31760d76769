"""How much the rank plan depends on the hidden-state sample.

The plan is re-derived from each resampled ID profile; a block whose rank moves across resamples
is one whose rank the data do not pin down.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from gelora.geometry.id_profile import IDProfile
from gelora.ranks.budget import Budget
from gelora.ranks.plan import RankPlan, TargetModule
from gelora.ranks.policies import MeasuredIDs, RankPolicy


@dataclass(frozen=True)
class RankSensitivity:
    n_resamples: int
    block_rank_ranges: list[tuple[int, int]]  # (min, max) rank of each block across resamples
    changed_blocks_per_resample: list[int]  # blocks whose rank differs from the main plan
    plans: list[list[int]] = field(default_factory=list)  # block ranks of each resample's plan

    @property
    def unstable_blocks(self) -> list[int]:
        return [b for b, (lo, hi) in enumerate(self.block_rank_ranges) if lo != hi]

    def to_dict(self) -> dict:
        return {**asdict(self), "unstable_blocks": self.unstable_blocks}


def rank_sensitivity(
    policy: RankPolicy,
    targets: Sequence[TargetModule],
    profile: IDProfile,
    plan: RankPlan,
    n_blocks: int,
    budget: Budget | None = None,
) -> RankSensitivity | None:
    """Plans from every resampled profile, compared with ``plan``; ``None`` without resamples."""
    resampled = profile.resampled_profiles()
    if not resampled or not policy.needs_intrinsic_dims:
        return None
    main = plan.block_ranks(n_blocks)
    # Each resample is planned with the main profile's spread (what a noise-aware rule reads).
    all_ranks = [
        policy.plan(targets, MeasuredIDs(dims, profile.stds), budget).block_ranks(n_blocks)
        for dims in resampled
    ]
    every = [*all_ranks, main]
    return RankSensitivity(
        n_resamples=len(resampled),
        block_rank_ranges=[
            (min(r[b] for r in every), max(r[b] for r in every)) for b in range(n_blocks)
        ],
        changed_blocks_per_resample=[
            sum(a != b for a, b in zip(ranks, main, strict=True)) for ranks in all_ranks
        ],
        plans=[list(ranks) for ranks in all_ranks],
    )
