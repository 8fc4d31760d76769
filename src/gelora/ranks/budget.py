"""Parameter budgets shared by every rank policy, and the allocator that meets them exactly.

A budget is what a comparison holds fixed. It is given either as an equivalent uniform rank
(``rank=2``: what uniform LoRA r=2 costs on the same target modules) or as a parameter count,
and is always resolved to an exact parameter count from the target modules' shapes: a LoRA
adapter of rank ``r`` on an ``in -> out`` map costs ``r (in + out)`` (Hu et al. 2021).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass

from gelora.errors import ConfigError
from gelora.ranks.plan import TargetModule


@dataclass(frozen=True)
class Budget:
    """Exactly one of ``rank`` (an equivalent uniform rank) and ``params`` (a count)."""

    rank: int | None = None
    params: int | None = None

    def __post_init__(self) -> None:
        if (self.rank is None) == (self.params is None):
            raise ValueError("a budget needs exactly one of budget.rank and budget.params")
        for key in ("rank", "params"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"budget.{key} must be a positive integer, got {value!r}")

    def n_params(self, targets: Sequence[TargetModule]) -> int:
        """The budget in parameters on these targets."""
        if self.params is not None:
            return self.params
        return sum(t.lora_params(self.rank) for t in targets)

    def describe(self, targets: Sequence[TargetModule]) -> str:
        given = f"rank {self.rank}" if self.rank is not None else f"{self.params:,} params"
        return f"{given} = {self.n_params(targets):,} adapter parameters"


def rank_unit(targets: Sequence[TargetModule]) -> int:
    """The smallest cost of one rank on one target: how close to a budget a plan can land."""
    return min(t.lora_params(1) for t in targets)


def equivalent_uniform_rank(
    targets: Sequence[TargetModule], budget: Budget | None, default: int
) -> int:
    """``budget.rank``, or the largest uniform rank a parameter budget affords (at least 1)."""
    if budget is None:
        return default
    if budget.rank is not None:
        return budget.rank
    return max(1, budget.params // sum(t.lora_params(1) for t in targets))


def check_budget_fits(budget: Budget | None, targets: Sequence[TargetModule]) -> None:
    """A budget must afford one rank on every target matrix (what every policy starts from).

    Raises:
        ConfigError: naming the budget and the smallest one that fits.
    """
    if budget is None:
        return
    floor = sum(t.lora_params(1) for t in targets)
    n_blocks = len({t.block for t in targets})
    if budget.n_params(targets) < floor:
        raise ConfigError(
            f"budget.params={budget.params:,} is below one rank per adapted matrix: the "
            f"{len(targets)} target matrices of {n_blocks} blocks need at least {floor:,} "
            "parameters (budget.rank=1)"
        )


def budget_from_config(rank: int | None, params: int | None) -> Budget | None:
    """``None`` when neither is set (an unbudgeted policy such as the paper's GeLoRA rule)."""
    if rank is None and params is None:
        return None
    return Budget(rank=rank, params=params)


ALLOCATIONS = ("proportional", "waterfill")


def allocate_ranks(
    targets: Sequence[TargetModule],
    n_params: int,
    scores: Sequence[float],
    minimum_ranks: Sequence[int] | None = None,
    allocation: str = "proportional",
) -> list[int]:
    """Per-target ranks that spend ``n_params`` in proportion to ``scores``, deterministically.

    Every target first gets ``minimum_ranks`` (1 by default). The rest of the budget, ``R``, is
    shared by the largest-remainder method (Hamilton's apportionment): target ``j`` would ideally
    get ``e_j = s_j R / sum_k s_k c_k`` extra ranks (``c_j`` its cost per rank), so that extra
    ranks are proportional to the scores and their cost is exactly ``R``. Each gets
    ``floor(e_j)``; what is left goes one rank at a time to the largest fractional remainders
    (ties to the earlier target) that still fit, until no target fits. So the result never
    exceeds the budget and misses it by less than ``rank_unit(targets)``.

    ``allocation="waterfill"`` spends the same ``R`` another way (``scores`` are then checked but
    not used): one rank at a time to the target of lowest current rank (ties to the earlier
    target) among those whose next rank still fits, until none fits. The lowest ranks rise
    first, so a budget well above the minimum ranks tends to a uniform plan; the stopping rule,
    and so the miss of less than ``rank_unit(targets)``, is the proportional rule's.

    Raises:
        ValueError: the minimum ranks alone exceed the budget, scores are bad, or the
            allocation is unknown.
    """
    if allocation not in ALLOCATIONS:
        raise ValueError(f"allocation must be one of {', '.join(ALLOCATIONS)}, got {allocation!r}")
    if not targets:
        raise ValueError("no target modules to adapt")
    if len(scores) != len(targets):
        raise ValueError(f"{len(scores)} scores for {len(targets)} targets")
    if any(not math.isfinite(s) or s < 0 for s in scores):
        raise ValueError(f"scores must be finite and >= 0, got {list(scores)}")
    ranks = list(minimum_ranks) if minimum_ranks is not None else [1] * len(targets)
    if len(ranks) != len(targets) or any(r < 0 for r in ranks):
        raise ValueError(f"minimum ranks must be >= 0, one per target, got {ranks}")
    costs = [t.lora_params(1) for t in targets]
    remaining = n_params - sum(r * c for r, c in zip(ranks, costs, strict=True))
    if remaining < 0:
        raise ValueError(
            f"the minimum ranks cost {n_params - remaining:,} parameters, "
            f"more than the budget of {n_params:,}"
        )
    if allocation == "waterfill":
        return _waterfill(ranks, costs, remaining)
    if sum(scores) == 0:
        scores = [1.0] * len(targets)  # nothing to prefer: share evenly
    weight = sum(s * c for s, c in zip(scores, costs, strict=True))
    ideal = [s * remaining / weight for s in scores]
    for j, extra in enumerate(ideal):
        ranks[j] += math.floor(extra)
        remaining -= math.floor(extra) * costs[j]
    by_remainder = sorted(range(len(targets)), key=lambda j: (-(ideal[j] % 1), j))
    while True:
        placed = False
        for j in by_remainder:
            if costs[j] <= remaining:
                ranks[j] += 1
                remaining -= costs[j]
                placed = True
        if not placed:
            return ranks


def _waterfill(ranks: list[int], costs: Sequence[int], remaining: int) -> list[int]:
    """``allocate_ranks``'s waterfill: the lowest rank that fits rises by one, until none fits.

    A target whose next rank does not fit never will (the budget only shrinks), so it leaves
    the queue for good.
    """
    queue = [(rank, j) for j, rank in enumerate(ranks)]
    heapq.heapify(queue)
    while queue:
        rank, j = heapq.heappop(queue)
        if costs[j] <= remaining:
            ranks[j] = rank + 1
            remaining -= costs[j]
            heapq.heappush(queue, (rank + 1, j))
    return ranks
