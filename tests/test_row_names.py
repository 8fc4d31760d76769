"""Run folders and wandb names use the table row (the ``method`` option), as tables do, so
``gelora`` and ``gelora_budget`` runs never share a name."""

from __future__ import annotations

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from gelora.config.resolvers import table_row
from tests.helpers import compose_train


def _resolved(*overrides: str):
    cfg = compose_train(*overrides, "paths.output_dir=.", "logger=wandb", hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    run_dir = OmegaConf.to_container(cfg.hydra.run, resolve=True)["dir"]
    logger = OmegaConf.to_container(cfg.logger, resolve=True)["wandb"]
    return run_dir, logger["name"], logger["job_type"]


def test_the_row_is_the_method_when_chosen_else_the_rank_policy():
    assert table_row("gelora_budget", "gelora") == "gelora_budget"
    assert table_row(None, "lora") == "lora"
    run_dir, name, job_type = _resolved("method=gelora_budget")
    assert "/gelora_budget/" in run_dir and name.endswith("-gelora_budget-s0")
    assert job_type == "gelora_budget"
    other_dir, other_name, _ = _resolved()  # the default: rank_policy=gelora, no method
    assert "/gelora/" in other_dir and other_name.endswith("-gelora-s0") and other_name != name
