"""``Allocator``: the one base of every rank allocator, and the one way a budget is spent.

An allocator gives a score per block (``per = "block"``) or per target matrix (``per =
"matrix"``) and this base spends the budget by those scores (``spend`` -> ``allocate_ranks``: one
rank per matrix first, the rest in proportion, largest remainders). Where the scores come from is
all that differs between allocators:

- from the ID profile (``scores(targets, intrinsic_dims)``): GeLoRA and the ID controls
  (``gelora.ranks.policies``, ``gelora.ranks.controls``);
- from the frozen model on a few training batches (``prepare``, before planning):
  ``gelora.ranks.scoring.ScoringAllocator`` and its subclasses (Fisher, gradient spectrum, weight
  spectrum, Hessian trace, importance, stable rank), whose scores are cached, timed and recorded.

Every allocator has the shuffled control of ``gelora.ranks.controls.ShuffledPolicy`` for free,
and is a rank policy: ``gelora.methods.ours.as_method`` puts its plan into our LoRA layers,
calling ``prepare`` first when the allocator has one (``prepare_timing`` not ``None``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from gelora.ranks.budget import Budget, allocate_ranks
from gelora.ranks.plan import RankPlan, TargetModule
from gelora.ranks.scaling import Scaling

PER = ("block", "matrix")  # what an allocator scores: each block, or each target matrix


def blocks_of(targets: Sequence[TargetModule]) -> list[int]:
    if not targets:
        raise ValueError("no target modules to adapt")
    return sorted({t.block for t in targets})


def require_budget(budget: Budget | None, policy: str) -> Budget:
    if budget is None:
        raise ValueError(f"the {policy} policy needs a budget: set budget.rank or budget.params")
    return budget


def check_per(per: str) -> str:
    if per not in PER:
        raise ValueError(f"rank_policy.per must be one of {', '.join(PER)}, got {per!r}")
    return per


class Allocator:
    """A rank allocator: scores, then the budget spent by them (``plan``).

    A subclass sets ``name`` (its table row) and writes ``scores``; ``per`` says whether the
    scores are one per block (index = block) or one per target (in target order). The run's
    scaling rule gives the alphas. ``prepare`` (nothing here) is where an allocator that reads the
    model computes its scores; it then sets ``prepare_timing``, the ``timings`` key of that work.
    """

    name: str
    needs_intrinsic_dims: bool = False
    # Whether ``plan`` refuses to run without a budget: the stages check it before any model
    # loads (``gelora.stages.plan.check_budget_given``). This class's ``plan`` does; GeLoRA,
    # uniform LoRA and the matched-cost control, which write their own, do not.
    needs_budget: bool = True
    per: str = "block"
    prepare_timing: str | None = None  # ``None``: ``prepare`` does nothing

    def __init__(self, scaling: Scaling | None = None):
        self.scaling = Scaling.of(scaling)

    def prepare(
        self,
        model: Any,
        train_batches: Callable[[], Iterable[dict]],
        targets: Sequence[TargetModule],
        budget: Budget | None,
    ) -> None:
        """Look at the frozen pretrained model before planning: nothing, for an ID allocator."""
        return None

    def scores(
        self, targets: Sequence[TargetModule], intrinsic_dims: Sequence[float] | None
    ) -> list[float]:
        """One score per block (index = block) or, ``per = "matrix"``, one per target."""
        raise NotImplementedError(f"{type(self).__name__} shares a budget by no score")

    def plan(
        self,
        targets: Sequence[TargetModule],
        intrinsic_dims: Sequence[float] | None = None,
        budget: Budget | None = None,
    ) -> RankPlan:
        scores = self.scores(targets, intrinsic_dims)
        return self.spend(targets, require_budget(budget, self.name), scores, per=self.per)

    def summary(self) -> dict[str, Any] | None:
        """What the run record keeps of the allocator (``method_summary``): nothing here."""
        return None

    def spend(
        self,
        targets: Sequence[TargetModule],
        budget: Budget,
        scores: Sequence[float],
        minimum_of_block: Sequence[int] | None = None,
        allocation: str = "proportional",
        notes: Sequence[str] = (),
        per: str = "block",
    ) -> RankPlan:
        """Spend ``budget`` over ``targets``: minimum ranks first, the rest by score (per block,
        index = block, or ``per="matrix"``, one per target); with ``allocation="waterfill"``,
        lowest rank first (see ``allocate_ranks``).

        When the minimum ranks cost more than the budget, every target keeps one rank instead and
        the plan says so in its notes.
        """
        n_params = budget.n_params(targets)
        notes = [f"budget: {budget.describe(targets)}", *notes]
        minimum = [1] * len(targets)
        if minimum_of_block is not None:
            wanted = [max(minimum_of_block[t.block], 1) for t in targets]
            cost = sum(r * t.lora_params(1) for r, t in zip(wanted, targets, strict=True))
            if cost <= n_params:
                minimum = wanted
            else:
                notes.append(
                    f"the ID-gap lower bound costs {cost:,} parameters, more than the budget: "
                    "kept one rank per matrix and shared the rest by "
                    + ("score" if allocation == "proportional" else allocation)
                )
        if check_per(per) == "block":
            scores = [scores[t.block] for t in targets]
        ranks = allocate_ranks(targets, n_params, scores, minimum, allocation)
        return RankPlan.from_target_ranks(self.name, targets, ranks, self.scaling, notes=notes)
