"""Where a table row's learning rate comes from: ``lr_choice.<row>.<task>`` (written by
``gelora-table --select-lr``), through ``lr_source`` for rows that take another row's rate, read
by the ``gelora_chosen_lr`` resolver; a rate that was never chosen is one line naming the key."""

from __future__ import annotations

import json

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from tests.helpers import TINY, compose_train, gelora_train

RATES = ["++lr_choice.gelora_budget.snli=0.003", "++lr_choice.lora.snli=0.0003"]


def _lr(*overrides: str) -> float:
    cfg = compose_train(*overrides, "paths.output_dir=.", hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return OmegaConf.to_container(cfg.optimizer, resolve=True)["lr"]


@pytest.mark.parametrize(
    ("method", "rate"),
    [("lora", 0.0003), ("gelora_budget", 0.003), ("shuffled", 0.003)],  # shuffled: lr_source
)
def test_a_row_trains_at_its_chosen_rate_or_its_source_rows(method, rate):
    assert _lr("experiment=table_cpu2", f"method={method}", "task=snli", *RATES) == rate


def test_a_rate_per_budget_is_read_under_its_key():
    rates = [
        f"++lr_choice.lora.rotten_tomatoes.rank_{r}={lr}" for r, lr in ((2, 0.001), (4, 0.003))
    ]
    common = ["experiment=budget_curve", "method=lora", *rates]
    assert _lr(*common, "budget.rank=4") == 0.003
    assert _lr(*common, "budget.rank=2") == 0.001


def test_a_rate_never_chosen_is_one_line_and_a_failed_record(tmp_path):
    unchosen = "~lr_choice.gelora_budget.snli"  # deleted: the committed choice file holds it
    proc = gelora_train(tmp_path, *TINY, "experiment=table_cpu2", "method=shuffled", "task=snli",
                        "++lr_choice.lora.snli=0.0003", unchosen)  # fmt: skip
    assert proc.returncode == 2
    line = (
        "gelora-train: error: optimizer.lr: no learning rate chosen at lr_choice.gelora_budget.snli"
        " (row shuffled trains at gelora_budget's rate: lr_source.shuffled)"
    )
    assert line in proc.stderr and "Traceback" not in proc.stderr
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["status"] == "failed" and record["learning_rate"] is None
