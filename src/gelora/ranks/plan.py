"""The rank plan: which modules get a LoRA adapter, with which rank and alpha.

A plan is decided once, before injection, by exact module name (as peft's ``rank_pattern``), and
travels with the run: it is printed, written to ``results.json`` and saved with checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from gelora.ranks.scaling import Scaling


def within_block(module_name: str, block: int) -> str:
    """A module's name relative to its block: ``bert.encoder.layer.3.attention.self.query`` in
    block 3 -> ``attention.self.query``, the name its twins in the other blocks share."""
    return module_name.split(f".{block}.", 1)[-1]


@dataclass(frozen=True)
class TargetModule:
    """A linear map that may be adapted: its full name, its block and its shape."""

    name: str
    block: int
    in_features: int
    out_features: int

    def lora_params(self, rank: int) -> int:
        """LoRA parameters at ``rank``: A is ``rank x in``, B is ``out x rank``."""
        return rank * (self.in_features + self.out_features)


@dataclass(frozen=True)
class AdapterSpec:
    """One adapted module. ``alpha / rank`` is the LoRA scaling (Hu et al. 2021)."""

    module_name: str
    block: int
    rank: int
    alpha: float
    in_features: int
    out_features: int

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"{self.module_name}: an adapter needs rank >= 1, got {self.rank}")

    @property
    def n_params(self) -> int:
        return self.rank * (self.in_features + self.out_features)

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank


@dataclass(frozen=True)
class RankPlan:
    """Adapters for a model, in module order. Modules not listed are left unadapted."""

    policy: str
    adapters: tuple[AdapterSpec, ...]
    notes: tuple[str, ...] = ()

    @classmethod
    def from_target_ranks(
        cls,
        policy: str,
        targets: Sequence[TargetModule],
        ranks: Sequence[int],
        scaling: Scaling,
        notes: Sequence[str] = (),
    ) -> RankPlan:
        """Target ``j`` gets rank ``ranks[j]``; rank 0 means no adapter."""
        if len(ranks) != len(targets):
            raise ValueError(f"{len(ranks)} ranks for {len(targets)} targets")
        adapters = tuple(
            AdapterSpec(
                module_name=t.name,
                block=t.block,
                rank=r,
                alpha=scaling.alpha(r),
                in_features=t.in_features,
                out_features=t.out_features,
            )
            for t, r in zip(targets, ranks, strict=True)
            if r > 0
        )
        return cls(policy=policy, adapters=adapters, notes=tuple(notes))

    @classmethod
    def from_ranks(
        cls,
        policy: str,
        targets: Iterable[TargetModule],
        rank_of_block: dict[int, int],
        scaling: Scaling,
    ) -> RankPlan:
        """Give every target of block ``b`` rank ``rank_of_block[b]``; rank 0 means no adapter."""
        adapters = tuple(
            AdapterSpec(
                module_name=t.name,
                block=t.block,
                rank=rank_of_block[t.block],
                alpha=scaling.alpha(rank_of_block[t.block]),
                in_features=t.in_features,
                out_features=t.out_features,
            )
            for t in targets
            if rank_of_block[t.block] > 0
        )
        return cls(policy=policy, adapters=adapters)

    @property
    def ranks(self) -> dict[str, int]:
        return {a.module_name: a.rank for a in self.adapters}

    @property
    def alphas(self) -> dict[str, float]:
        return {a.module_name: a.alpha for a in self.adapters}

    @property
    def trainable_adapter_params(self) -> int:
        return sum(a.n_params for a in self.adapters)

    @property
    def total_rank(self) -> int:
        return sum(a.rank for a in self.adapters)

    def block_ranks(self, n_blocks: int) -> list[int]:
        """Largest rank in each block (0 for a block without adapters).

        Block-level policies give all of a block's matrices one rank; budgeted plans may differ by
        one within a block, from the last rank units placed to meet the budget.
        """
        ranks = [0] * n_blocks
        for adapter in self.adapters:
            ranks[adapter.block] = max(ranks[adapter.block], adapter.rank)
        return ranks

    def to_dict(self) -> dict:
        return {
            "policy": self.policy,
            "adapters": [asdict(a) for a in self.adapters],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict) -> RankPlan:
        return cls(
            policy=data["policy"],
            adapters=tuple(AdapterSpec(**adapter) for adapter in data["adapters"]),
            notes=tuple(data.get("notes", ())),
        )
