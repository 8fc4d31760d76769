"""OmegaConf resolvers the configs use, registered when ``gelora.config`` is imported."""

from __future__ import annotations

from omegaconf import OmegaConf


def table_row(method: str | None, rank_policy: str | None) -> str:
    """A run's table row, as tables name it: the ``method`` option when one is chosen (a rank
    policy plus its budget: ``gelora_budget``), else the ``rank_policy`` option. Run folders and
    wandb names use it, so ``gelora`` and ``gelora_budget`` runs never share a name."""
    return str(method or rank_policy)


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("gelora_row", table_row, replace=True)
