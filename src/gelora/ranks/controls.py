"""Controls: rank policies whose purpose is to test where GeLoRA's ranks go and what they cost.

Each answers one question of a table. ``IDProportionalPolicy``: does the ID level, not the gap,
carry the signal? ``RandomPolicy``: does the budget, not the geometry? ``ShuffledPolicy``: does
the placement GeLoRA chooses matter at all (``shuffle_blocks``: the permutation every allocator's
shuffled control shares)? ``MatchedUniformPolicy``: is the paper's rule better
than uniform LoRA at its own cost? ``HeadOnlyPolicy``: the floor, no adapters at all. They are
``gelora.ranks``' names too, as ``conf/method/`` files name them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from gelora.ranks.budget import Budget
from gelora.ranks.plan import RankPlan, TargetModule, within_block
from gelora.ranks.policies import (
    BudgetedPolicy,
    GeLoRAPolicy,
    block_scores,
    blocks_of,
    check_blocks,
    checked_dims,
    require_budget,
)
from gelora.ranks.scaling import Scaling


class IDProportionalPolicy(BudgetedPolicy):
    """Control: a budget shared in proportion to each block's output ID (one rank minimum).

    If this matches GeLoRA, the ID level, not the ID gap, carries the signal.
    """

    name = "id_proportional"
    needs_intrinsic_dims = True

    def scores_of_blocks(
        self, targets: Sequence[TargetModule], intrinsic_dims: Sequence[float] | None
    ) -> list[float]:
        dims = checked_dims(intrinsic_dims, self.name)
        check_blocks(targets, len(dims) - 1, len(dims))
        return block_scores(dims, "id")


class RandomPolicy(BudgetedPolicy):
    """Control: the same budget shared by block scores drawn uniformly at random with ``seed``.

    If this matches GeLoRA, the budget and not the geometry carries the result.
    """

    name = "random"
    needs_intrinsic_dims = False

    def __init__(self, seed: int = 0, scaling: Scaling | None = None):
        super().__init__(scaling)
        self.seed = seed

    def scores_of_blocks(
        self, targets: Sequence[TargetModule], intrinsic_dims: Sequence[float] | None
    ) -> list[float]:
        generator = random.Random(self.seed)
        return [generator.random() for _ in range(blocks_of(targets)[-1] + 1)]


class HeadOnlyPolicy:
    """Control: no adapters at all; only the task head trains (as in every other row).

    The floor of a table: a method that does not clearly beat it has not used its adapters.
    """

    name = "head_only"
    needs_intrinsic_dims = False

    def __init__(self, scaling: Scaling | None = None):
        self.scaling = Scaling.of(scaling)  # unused: kept so every policy takes the run's rule

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


class ShuffledPolicy:
    """Control: budgeted GeLoRA's ranks, with whole blocks permuted at random by ``seed``.

    The same ranks, the same parameter count (blocks of one model have the same matrices), only
    their placement moved: if this matches GeLoRA, the placement the ID gaps choose does not
    matter. The permutation is ``shuffle_blocks``'s, which every allocator's shuffled control
    shares (``gelora.methods.shuffled``).
    """

    needs_intrinsic_dims = True
    needs_budget = True

    def __init__(
        self,
        seed: int = 0,
        offset: int = 1,
        score: str = "gap",
        scaling: Scaling | None = None,
        name: str = "shuffled",
    ):
        self.name = name  # the table row it is (conf/method/<name>.yaml): named in its messages
        self.seed = seed
        self.gelora = GeLoRAPolicy(offset=offset, score=score, scaling=scaling)
        self.scaling = self.gelora.scaling

    def plan(
        self,
        targets: Sequence[TargetModule],
        intrinsic_dims: Sequence[float] | None,
        budget: Budget | None = None,
    ) -> RankPlan:
        budget = require_budget(budget, self.name)
        original = self.gelora.plan(targets, intrinsic_dims, budget)
        return shuffle_blocks(
            original, targets, self.seed, self.name, self.scaling, source="budgeted GeLoRA"
        )


def shuffle_blocks(
    original: RankPlan,
    targets: Sequence[TargetModule],
    seed: int,
    name: str,
    scaling: Scaling,
    *,
    source: str,
) -> RankPlan:
    """``original``'s ranks with whole blocks permuted at random by ``seed``: block ``b`` takes
    the ranks (matrix by matrix) of block ``moved[b]``.

    The same multiset of block ranks and the same parameter count (every block must hold the
    same target matrices), other places. A permutation that leaves the ranks where they were is
    drawn again (up to 100 times, when any other arrangement exists). ``source`` names the
    allocator in the plan's note.
    """
    blocks = blocks_of(targets)
    rank_of = {t.name: original.ranks.get(t.name, 0) for t in targets}
    relative = {t.name: within_block(t.name, t.block) for t in targets}
    by_block = {
        b: {relative[t.name]: rank_of[t.name] for t in targets if t.block == b} for b in blocks
    }
    if any(set(by_block[b]) != set(by_block[blocks[0]]) for b in blocks):
        raise ValueError(f"{name} needs every block to hold the same target matrices")
    unmoved = [rank_of[t.name] for t in targets]
    generator = random.Random(seed)
    order = list(blocks)
    for _ in range(100):
        generator.shuffle(order)
        moved = dict(zip(blocks, order, strict=True))
        ranks = [by_block[moved[t.block]][relative[t.name]] for t in targets]
        if ranks != unmoved:
            break
    notes = [
        *original.notes,
        f"{name}: block b takes {source}'s ranks of block "
        + ", ".join(f"{b}<-{moved[b]}" for b in blocks),
    ]
    return RankPlan.from_target_ranks(name, targets, ranks, scaling, notes=notes)


class MatchedUniformPolicy(BudgetedPolicy):
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
