"""Rank policies: from targets (and intrinsic dimensions) to a rank plan.

A policy is a small class built by Hydra from the ``rank_policy`` node of a
``conf/method/<row>.yaml``; ``plan`` is its one job. Adding a policy means one such class and one
``conf/method/`` file. Here: GeLoRA, uniform LoRA and the rules they share (ID gaps, block
scores); every policy spends its budget through ``gelora.ranks.allocator.Allocator``, the base of
all allocators; the controls are in ``gelora.ranks.controls``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Protocol

from gelora.ranks.allocator import Allocator, blocks_of
from gelora.ranks.budget import Budget
from gelora.ranks.plan import RankPlan, TargetModule
from gelora.ranks.scaling import Scaling

BLOCK_SCORES = ("gap", "id", "uniform")
REMAINDERS = (*BLOCK_SCORES, "waterfill")  # budgeted GeLoRA's ``score``: how the rest is shared


class MeasuredIDs(list):
    """A profile's IDs (a plain list of floats, the embeddings output first) that also carry
    each layer's standard deviation over the resampled estimates, ``stds`` (``None`` when the
    profile was not resampled: ``estimator.n_resamples`` 0).

    Every policy reads it as the list it is; ``GeLoRAPolicy(noise_k > 0)`` also reads ``stds``.
    """

    def __init__(self, dims: Sequence[float], stds: Sequence[float | None] | None = None):
        super().__init__(float(d) for d in dims)
        if stds is not None and len(stds) != len(self):
            raise ValueError(f"{len(stds)} ID standard deviations for {len(self)} layers")
        known = stds is not None and all(s is not None for s in stds)
        self.stds: tuple[float, ...] | None = tuple(float(s) for s in stds) if known else None

    @classmethod
    def of(cls, profile) -> MeasuredIDs:
        """From an ``IDProfile`` (``gelora.geometry.id_profile``): its dimensions and stds."""
        return cls(profile.dimensions, profile.stds)


class RankPolicy(Protocol):
    """From target modules (and the ID profile, and a budget) to a rank plan: nothing else.

    A policy that also changes how the model is adapted or trained is a ``gelora.methods.Method``.
    """

    name: str
    needs_intrinsic_dims: bool

    def plan(
        self,
        targets: Sequence[TargetModule],
        intrinsic_dims: Sequence[float] | None,
        budget: Budget | None = None,
    ) -> RankPlan: ...


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


def noise_aware_gaps(
    intrinsic_dims: Sequence[float], stds: Sequence[float], k: float
) -> tuple[list[float], list[int]]:
    """The ID gaps ``g_i = d_{i+1} - d_i`` (block ``i``) that clear ``k`` standard deviations.

    A gap counts, unchanged, only when ``g_i > k * sqrt(s_i^2 + s_{i+1}^2)``, ``s`` being each
    layer's standard deviation over the resampled ID estimates; otherwise it counts as 0. The
    gap's spread is taken as that of a difference of independent estimates: the resamples of
    adjacent layers share their points, so this ignores their covariance (with the usual positive
    correlation, it overstates the spread, and so errs towards calling a gap noise). ``k = 0``
    keeps every positive gap: the paper's rule. Returns the gaps and the blocks whose positive
    gap was set to 0.
    """
    kept, ignored = [], []
    pairs = zip(itertools.pairwise(intrinsic_dims), itertools.pairwise(stds), strict=True)
    for block, ((before, after), (s_before, s_after)) in enumerate(pairs):
        gap = after - before
        if gap > k * math.hypot(s_before, s_after):
            kept.append(gap)
        else:
            kept.append(0.0)
            if gap > 0:
                ignored.append(block)
    return kept, ignored


def checked_dims(intrinsic_dims: Sequence[float] | None, policy: str) -> list[float]:
    if intrinsic_dims is None:
        raise ValueError(f"the {policy} policy needs intrinsic dimensions")
    if len(intrinsic_dims) < 2 or not all(math.isfinite(d) for d in intrinsic_dims):
        raise ValueError(
            f"the {policy} policy needs at least two finite IDs, got {list(intrinsic_dims)}"
        )
    return list(intrinsic_dims)


def block_scores(intrinsic_dims: Sequence[float], kind: str) -> list[float]:
    """A geometric score per block, to share a budget by.

    ``gap``: the ID gain across the block, ``max(d_{i+1} - d_i, 0)`` (GeLoRA's bound before
    rounding); ``id``: the ID of the block's output; ``uniform``: 1 for every block.
    """
    if kind not in BLOCK_SCORES:
        raise ValueError(
            f"rank_policy.score must be one of {', '.join(BLOCK_SCORES)}, got {kind!r}"
        )
    if kind == "gap":
        return [max(after - before, 0.0) for before, after in itertools.pairwise(intrinsic_dims)]
    if kind == "id":
        return list(intrinsic_dims[1:])
    return [1.0] * (len(intrinsic_dims) - 1)


def check_blocks(targets: Sequence[TargetModule], n_blocks: int, n_dims: int) -> None:
    blocks = blocks_of(targets)
    if blocks[-1] >= n_blocks:
        raise ValueError(
            f"targets reach block {blocks[-1]} but the ID profile has only "
            f"{n_dims} layers ({n_blocks} blocks)"
        )


class GeLoRAPolicy(Allocator):
    """Per-block ranks from intrinsic-dimension gaps (arXiv 2412.09250).

    Without a budget, the paper's rule: every matrix of block ``i`` gets
    ``max(ceil(d_{i+1} - d_i), 0) + offset``. With a budget, that rule is the lower bound and the
    rest of the budget is shared by ``score``:

    - ``gap`` (the default), ``id``, ``uniform``: in proportion to the block's score (see
      ``block_scores``: its positive ID gap, its output ID, or 1) by largest-remainder rounding
      (``allocate_ranks``);
    - ``waterfill``: one rank at a time to the lowest-ranked matrix (ties to the earlier target,
      so to the earlier block), the bounds as the floor (``allocate_ranks(allocation=
      "waterfill")``). A budget equal to the bounds' cost gives the bounds; a large one tends to
      uniform LoRA lifted where the gaps ask for more. Issue 26: proportional sharing hands most
      of a large budget to the one or two blocks of largest gap, so beyond the bound the gap's
      noise decides where most parameters go; waterfill uses the gaps only as floors.

    ``noise_k`` (0 in the paper, and by default) makes the gaps noise-aware (issue 26: with a few
    hundred points, adjacent layers' IDs differ by about their own resampling error, so many
    gaps, and the ranks they set, are noise). A gap counts only beyond ``noise_k`` standard
    deviations of its resampled estimate (``noise_aware_gaps``); a gap within them counts as 0,
    in the bound and in the ``gap`` score. It needs the profile's resampled spread
    (``MeasuredIDs``, so ``estimator.n_resamples >= 2``).

    When the bounds cost more than the budget, every matrix keeps one rank and the whole budget
    is shared by ``score`` (``waterfill``: uniform), and the plan's notes say so.

    Alphas follow the run's scaling rule (``gelora.ranks.scaling``; the paper holds
    ``alpha / r = 32``, the ``gelora_paper`` method).
    """

    name = "gelora"
    needs_intrinsic_dims = True
    needs_budget = False  # without one, the paper's rule

    def __init__(
        self,
        offset: int = 1,
        score: str = "gap",
        scaling: Scaling | None = None,
        noise_k: float = 0.0,
    ):
        if offset < 0:
            raise ValueError(f"rank_policy.offset must be >= 0, got {offset}")
        if score not in REMAINDERS:
            raise ValueError(
                f"rank_policy.score must be one of {', '.join(REMAINDERS)}, got {score!r}"
            )
        if (
            isinstance(noise_k, bool)
            or not isinstance(noise_k, int | float)
            or not math.isfinite(noise_k)
            or noise_k < 0
        ):
            raise ValueError(f"rank_policy.noise_k must be a finite number >= 0, got {noise_k!r}")
        super().__init__(scaling)
        self.offset = offset
        self.score = score
        self.noise_k = noise_k

    def plan(
        self,
        targets: Sequence[TargetModule],
        intrinsic_dims: Sequence[float] | None,
        budget: Budget | None = None,
    ) -> RankPlan:
        dims = checked_dims(intrinsic_dims, self.name)
        if self.noise_k == 0:  # the paper's rule, untouched
            ranks = gelora_block_ranks(dims, self.offset)
            gaps, notes = None, []
        else:
            gaps, notes = self._noise_aware(dims, getattr(intrinsic_dims, "stds", None))
            ranks = [max(math.ceil(gap), 0) + self.offset for gap in gaps]
        check_blocks(targets, len(ranks), len(dims))
        if budget is None:
            plan = RankPlan.from_ranks(self.name, targets, dict(enumerate(ranks)), self.scaling)
            return RankPlan(plan.policy, plan.adapters, (*plan.notes, *notes)) if notes else plan
        if self.score == "waterfill":
            scores, allocation = block_scores(dims, "uniform"), "waterfill"  # scores unused
        else:
            scores, allocation = block_scores(dims, self.score), "proportional"
            if gaps is not None and self.score == "gap":
                scores = gaps
        return self.spend(
            targets, budget, scores, minimum_of_block=ranks, allocation=allocation, notes=notes
        )

    def _noise_aware(
        self, dims: list[float], stds: Sequence[float] | None
    ) -> tuple[list[float], list[str]]:
        if stds is None:
            raise ValueError(
                f"rank_policy.noise_k={self.noise_k} needs each layer's ID spread over resamples: "
                "set estimator.n_resamples to 2 or more (or rank_policy.noise_k=0)"
            )
        gaps, ignored = noise_aware_gaps(dims, stds, self.noise_k)
        note = (
            f"noise_k={self.noise_k}: the ID gaps of blocks {', '.join(map(str, ignored))} lie "
            "within noise_k standard deviations of their resampled estimates and count as 0"
            if ignored
            else f"noise_k={self.noise_k}: every positive ID gap clears its noise"
        )
        return gaps, [note]


class UniformPolicy(Allocator):
    """Plain LoRA: the same rank and alpha for every target module (Hu et al. 2021).

    With a budget, the rank is ``budget.rank``; a budget in parameters is met by the largest
    uniform rank plus single rank units placed by ``allocate_ranks``.
    """

    name = "lora"
    needs_intrinsic_dims = False
    needs_budget = False  # without one, rank_policy.rank

    def __init__(self, rank: int = 8, scaling: Scaling | None = None):
        if rank < 1:
            raise ValueError(f"rank_policy.rank must be >= 1, got {rank}")
        super().__init__(scaling)
        self.rank = rank

    def plan(
        self,
        targets: Sequence[TargetModule],
        intrinsic_dims: Sequence[float] | None = None,
        budget: Budget | None = None,
    ) -> RankPlan:
        blocks = blocks_of(targets)
        if budget is not None and budget.params is not None:
            return self.spend(targets, budget, [1.0] * (blocks[-1] + 1))
        rank = budget.rank if budget is not None else self.rank
        return RankPlan.from_ranks(self.name, targets, dict.fromkeys(blocks, rank), self.scaling)
