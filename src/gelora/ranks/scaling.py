"""The LoRA scaling rule: how an adapter's alpha follows from its rank.

LoRA's update is ``(alpha / r) B A x`` (Hu et al. 2021, section 4.1). Every policy here holds
``alpha / r`` constant at ``alpha_over_rank`` (GeLoRA uses 32, arXiv 2412.09250; the LoRA and
AdaLoRA GLUE baselines use 2), so alpha grows with the rank. This is the one place that says so.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConstantScaling:
    """``alpha = alpha_over_rank * r``: every adapter's update has the same scaling."""

    alpha_over_rank: float

    def __post_init__(self) -> None:
        if not self.alpha_over_rank > 0:
            raise ValueError(f"rank_policy.alpha_over_rank must be > 0, got {self.alpha_over_rank}")

    def alpha(self, rank: int) -> float:
        return float(self.alpha_over_rank * rank)
