"""Where a table row's learning rate comes from: ``lr_choice.<row>.<task>`` (written by
``gelora-table --select-lr``), through ``lr_source`` for rows that take another row's rate, read
by the ``gelora_chosen_lr`` resolver; a rate that was never chosen is one line naming the key."""

from __future__ import annotations

import json

import pytest
import yaml
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


def test_a_shared_rate_is_chosen_on_the_mean_of_its_rows_with_margins(tmp_path, capsys):
    # issue 42: one rate per task for lora and an allocator, on the mean of both rows'
    # validation, beside each row's own choice; every chosen cell says its margin
    from gelora.table.cli import main
    from tests.test_table import _completed, _job

    sweep = tmp_path / "grid"
    # lora: 1e-3 best (80 vs 78); gelora: 3e-3 best (83 vs 79); mean: 1e-3 79.5, 3e-3 80.5
    for method, scores in {"lora": (0.80, 0.78), "gelora": (0.79, 0.83)}.items():
        for lr, val in zip((1e-3, 3e-3), scores, strict=True):
            _job(sweep, method, "sst", 0, _completed(0.5, val=val, lr=lr), lr=lr)
    out = tmp_path / "lr.yaml"
    main([str(sweep), "--select-lr", str(out), "--shared-rate", "shared=lora,gelora"])
    printed = capsys.readouterr().out
    chosen = yaml.safe_load(out.read_text())["lr_choice"]
    assert chosen == {"lora": {"sst": 0.001}, "gelora": {"sst": 0.003}, "shared": {"sst": 0.003}}
    assert "| shared | 0.001: 79.50, **0.003: 80.50** (margin 1.00) |" in printed
    assert "| lora | **0.001: 80.00**, 0.003: 78.00 (margin 2.00) |" in printed
    for bad in ("shared=lora", "lora=lora,gelora", "x=lora,nope"):
        with pytest.raises(SystemExit):
            main([str(sweep), "--select-lr", str(out), "--shared-rate", bad])


@pytest.mark.parametrize(
    ("overrides", "source"),
    [
        ((), "the task's default (task.lr of task=rotten_tomatoes)"),
        (("optimizer.lr=5e-4",), "the command line (optimizer.lr=5e-4)"),
        (("experiment=instruct_gpu",), "a config file's number (lr_sources.fixed"),
        (
            ("experiment=glue_deberta_v3",),
            "a published per-task rate (lr_sources.published: ${adalora_glue[${task.name}].lr})",
        ),
        (("experiment=table_cpu", "method=shuffled", "task=snli"), "chosen on validation"),
        (("experiment=table_cpu", "optimizer.lr=1e-2"), "the command line (optimizer.lr=1e-2)"),
    ],
)
def test_a_run_names_where_its_learning_rate_came_from(overrides, source):
    # docs/experiments.md, "Where a learning rate comes from": the first source that is set
    from gelora.config.lr_choice import lr_source

    assert lr_source(compose_train(*overrides), overrides).startswith(source)
