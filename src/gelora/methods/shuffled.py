"""The shuffled control of any budgeted allocator: its plan, whole blocks permuted by a seed.

``ShuffledControl(allocator, seed)`` prepares as the allocator does (the same scores, the same
cache and timings key), plans as it does, then permutes the per-block ranks across blocks with
``seed`` (the run's, in ``conf/method/<allocator>_shuffled.yaml``) through
``gelora.ranks.controls.shuffle_blocks``, the permutation GeLoRA's ``shuffled`` row uses. The same
ranks and parameters as the allocator's plan on the same scores, other places: the allocator
against its shuffle is the effect of placement alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from torch import nn

from gelora.methods.base import Method
from gelora.methods.ours import LoRALayersMethod, as_method
from gelora.ranks.budget import Budget
from gelora.ranks.controls import shuffle_blocks
from gelora.ranks.plan import RankPlan, TargetModule
from gelora.ranks.policies import require_budget
from gelora.ranks.scaling import Scaling


class ShuffledControl(LoRALayersMethod):
    """A ``Method``: ``allocator``'s budgeted plan with whole blocks permuted by ``seed``;
    named ``<allocator>_shuffled``."""

    def __init__(self, allocator: Any, seed: int = 0, scaling: Scaling | None = None):
        self.allocator: Method = as_method(allocator)
        self.seed = seed
        self.scaling = Scaling.of(scaling)
        self.moved_note: str | None = None

    @property
    def name(self) -> str:
        return f"{self.allocator.name}_shuffled"

    @property
    def needs_intrinsic_dims(self) -> bool:
        return self.allocator.needs_intrinsic_dims

    needs_budget = True  # a budgeted plan, permuted

    @property
    def prepare_timing(self) -> str | None:
        return self.allocator.prepare_timing

    def use_head(self, head_modules: Sequence[str]) -> None:
        """Passed on to the allocator, if it redraws the head (``make_plan``)."""
        if hasattr(self.allocator, "use_head"):
            self.allocator.use_head(head_modules)

    def prepare(
        self,
        model: nn.Module,
        train_batches: Callable[[], Iterable[dict]],
        targets: Sequence[TargetModule],
        budget: Budget | None,
    ) -> None:
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
            original, targets, self.seed, self.name, self.scaling, source=self.allocator.name
        )
        self.moved_note = plan.notes[-1]
        return plan

    def summary(self, model: nn.Module) -> dict[str, Any] | None:
        """The allocator's summary, and where each block's ranks came from."""
        return {**(self.allocator.summary(model) or {}), "shuffled": self.moved_note}
