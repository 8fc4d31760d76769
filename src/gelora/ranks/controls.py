"""Controls: rank policies whose purpose is to test where GeLoRA's ranks go and what they cost.

Each answers one question of a table. ``IDProportionalPolicy``: does the ID level, not the gap,
carry the signal? ``RandomPolicy``: does the budget, not the geometry? ``ShuffledPolicy``: does
the placement an allocator chooses matter at all (the one shuffled control, of any allocator)?
``MatchedUniformPolicy``: is the paper's rule better than uniform LoRA at its own cost?
``HeadOnlyPolicy``: the floor, no adapters at all. They are ``gelora.ranks``' names too, as
``conf/method/`` files name them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from gelora.ranks.allocator import Allocator, blocks_of, require_budget
from gelora.ranks.budget import Budget
from gelora.ranks.plan import RankPlan, TargetModule, within_block
from gelora.ranks.policies import GeLoRAPolicy, block_scores, check_blocks, checked_dims
from gelora.ranks.scaling import Scaling


class IDProportionalPolicy(Allocator):
    """Control: a budget shared in proportion to each block's output ID (one rank minimum).

    If this matches GeLoRA, the ID level, not the ID gap, carries the signal.
    """

    name = "id_proportional"
    needs_intrinsic_dims = True

    def scores(
        self, targets: Sequence[TargetModule], intrinsic_dims: Sequence[float] | None
    ) -> list[float]:
        dims = checked_dims(intrinsic_dims, self.name)
        check_blocks(targets, len(dims) - 1, len(dims))
        return block_scores(dims, "id")


class RandomPolicy(Allocator):
    """Control: the same budget shared by block scores drawn uniformly at random with ``seed``.

    If this matches GeLoRA, the budget and not the geometry carries the result.
    """

    name = "random"
    needs_intrinsic_dims = False

    def __init__(self, seed: int = 0, scaling: Scaling | None = None):
        super().__init__(scaling)
        self.seed = seed

    def scores(
        self, targets: Sequence[TargetModule], intrinsic_dims: Sequence[float] | None
    ) -> list[float]:
        generator = random.Random(self.seed)
        return [generator.random() for _ in range(blocks_of(targets)[-1] + 1)]


class HeadOnlyPolicy(Allocator):
    """Control: no adapters at all; only the task head trains (as in every other row).

    The floor of a table: a method that does not clearly beat it has not used its adapters.
    Its scaling is unused: kept so that every policy takes the run's rule.
    """

    name = "head_only"
    needs_intrinsic_dims = False
    needs_budget = False

    def plan(
        self,
        targets: Sequence[TargetModule],
        intrinsic_dims: Sequence[float] | None = None,
        budget: Budget | None = None,
    ) -> RankPlan:
        if not targets:
            raise ValueError("no target modules to adapt")
        notes = ["head only: no adapters, the budget is not spent"] if budget else []
        return RankPlan.from_target_ranks(
            self.name, targets, [0] * len(targets), self.scaling, notes=notes
        )


class ShuffledPolicy(Allocator):
    """Control: an allocator's budgeted plan, with whole blocks permuted at random by ``seed``;
    the one shuffled control of every allocator.

    The same ranks, the same parameter count (blocks of one model have the same matrices), only
    their placement moved: if this matches the allocator, the placement its scores choose does
    not matter. ``allocator`` is any allocator (``conf/method/<row>_shuffled.yaml`` repeats the
    row's ``rank_policy`` under ``allocator``); its ``prepare`` runs as its own would (the same
    scores, the same cache, the same timings key) and its summary is recorded with where each
    block's ranks came from. Without one, the allocator is budgeted GeLoRA with ``offset`` and
    ``score`` (the ``shuffled`` row). The permutation is ``shuffle_blocks``'s.
    """

    needs_budget = True  # a budgeted plan, permuted

    def __init__(
        self,
        seed: int = 0,
        allocator: Any = None,
        offset: int | None = None,
        score: str | None = None,
        scaling: Scaling | None = None,
        name: str | None = None,
    ):
        super().__init__(scaling)
        if allocator is not None and (offset is not None or score is not None):
            raise ValueError(
                "rank_policy.offset and rank_policy.score are budgeted GeLoRA's: with "
                "rank_policy.allocator, set them under it"
            )
        if allocator is None:
            offset = 1 if offset is None else offset
            allocator = GeLoRAPolicy(offset=offset, score=score or "gap", scaling=scaling)
            self.source, default_name = "budgeted GeLoRA", "shuffled"
        else:
            self.source = allocator.name
            default_name = f"{allocator.name}_shuffled"
        # its table row (conf/method/<name>.yaml): named in its messages and the plan's policy
        self.name = name or default_name
        self.seed = seed
        self.allocator = allocator
        self.moved_note: str | None = None

    @property
    def needs_intrinsic_dims(self) -> bool:
        return bool(self.allocator.needs_intrinsic_dims)

    @property
    def prepare_timing(self) -> str | None:
        return getattr(self.allocator, "prepare_timing", None)

    def use_head(self, head_modules: Sequence[str]) -> None:
        """Passed on to the allocator, if it redraws the head (``make_plan``)."""
        if hasattr(self.allocator, "use_head"):
            self.allocator.use_head(head_modules)

    def prepare(self, model, train_batches, targets, budget) -> None:
        if hasattr(self.allocator, "prepare"):
            self.allocator.prepare(model, train_batches, targets, budget)

    def plan(
        self,
        targets: Sequence[TargetModule],
        intrinsic_dims: Sequence[float] | None = None,
        budget: Budget | None = None,
    ) -> RankPlan:
        budget = require_budget(budget, self.name)
        original = self.allocator.plan(targets, intrinsic_dims, budget)
        plan = shuffle_blocks(
            original, targets, self.seed, self.name, self.scaling, source=self.source
        )
        self.moved_note = plan.notes[-1]
        return plan

    def summary(self) -> dict[str, Any] | None:
        """The allocator's summary (if it has one), and where each block's ranks came from. Its
        plans over other draws, if any, are the allocator's before the permutation: kept as
        ``allocator_plan_draws``, which the table's plan-stability section does not read as
        this row's."""
        inner = self.allocator.summary() if hasattr(self.allocator, "summary") else None
        if inner is None:
            return None
        if "plan_draws" in inner:
            inner = {k: v for k, v in inner.items() if k != "plan_draws"} | {
                "allocator_plan_draws": inner["plan_draws"]
            }
        return {**inner, "shuffled": self.moved_note}


def block_permutation(
    targets: Sequence[TargetModule], rank_of: dict[str, int], seed: int, name: str
) -> dict[int, int]:
    """``moved``: block ``b`` takes the matrices of block ``moved[b]``, whole blocks permuted at
    random by ``seed``. A permutation that leaves every target's rank where it was is drawn again
    (up to 100 times, when any other arrangement exists). The one rule of every shuffled control:
    the training row (``shuffle_blocks``) and the emitted plan (``gelora.plan.emit``).

    Raises:
        ValueError: the blocks do not all hold the same target matrices (``name`` says whose).
    """
    blocks = blocks_of(targets)
    relative = {t.name: within_block(t.name, t.block) for t in targets}
    by_block = {
        b: {relative[t.name]: rank_of.get(t.name, 0) for t in targets if t.block == b}
        for b in blocks
    }
    if any(set(by_block[b]) != set(by_block[blocks[0]]) for b in blocks):
        raise ValueError(f"{name} needs every block to hold the same target matrices")
    unmoved = [rank_of.get(t.name, 0) for t in targets]
    generator = random.Random(seed)
    order = list(blocks)
    for _ in range(100):
        generator.shuffle(order)
        moved = dict(zip(blocks, order, strict=True))
        if [by_block[moved[t.block]][relative[t.name]] for t in targets] != unmoved:
            break
    return moved


def moved_sources(targets: Sequence[TargetModule], moved: dict[int, int]) -> dict[str, str]:
    """For each target's name, the name of the target whose matrix it takes under ``moved``: the
    same matrix of block ``moved[target.block]``."""
    by_place = {(t.block, within_block(t.name, t.block)): t.name for t in targets}
    return {t.name: by_place[moved[t.block], within_block(t.name, t.block)] for t in targets}


def shuffle_blocks(
    original: RankPlan,
    targets: Sequence[TargetModule],
    seed: int,
    name: str,
    scaling: Scaling,
    *,
    source: str,
) -> RankPlan:
    """``original``'s ranks with whole blocks permuted at random by ``seed``
    (``block_permutation``): block ``b`` takes the ranks (matrix by matrix) of block ``moved[b]``.

    The same multiset of block ranks and the same parameter count (every block must hold the
    same target matrices), other places. ``source`` names the allocator in the plan's note.
    """
    rank_of = {t.name: original.ranks.get(t.name, 0) for t in targets}
    moved = block_permutation(targets, rank_of, seed, name)
    source = moved_sources(targets, moved)
    ranks = [rank_of[source[t.name]] for t in targets]
    notes = [
        *original.notes,
        f"{name}: block b takes {source}'s ranks of block "
        + ", ".join(f"{b}<-{moved[b]}" for b in blocks_of(targets)),
    ]
    return RankPlan.from_target_ranks(name, targets, ranks, scaling, notes=notes)


class MatchedUniformPolicy(Allocator):
    """Uniform LoRA at unbudgeted GeLoRA's own parameter count (on the same ID profile).

    The fair partner of the paper's rule, which spends what its ID gaps ask for: this row spends
    exactly that (to within one rank unit) evenly over the matrices.
    """

    name = "lora_gelora_cost"
    needs_intrinsic_dims = True
    needs_budget = False  # its budget is GeLoRA's own cost

    def __init__(self, offset: int = 1, scaling: Scaling | None = None):
        self.gelora = GeLoRAPolicy(offset=offset, scaling=scaling)
        super().__init__(self.gelora.scaling)

    def plan(
        self,
        targets: Sequence[TargetModule],
        intrinsic_dims: Sequence[float] | None,
        budget: Budget | None = None,
    ) -> RankPlan:
        cost = self.gelora.plan(targets, intrinsic_dims).trainable_adapter_params
        blocks = blocks_of(targets)
        plan = self.spend(targets, Budget(params=cost), [1.0] * (blocks[-1] + 1))
        note = f"GeLoRA's own cost on this profile: {cost:,} parameters"
        return RankPlan(plan.policy, plan.adapters, (*plan.notes, note))
