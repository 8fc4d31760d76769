"""The protocol options of issue 26 as an experiment config states them: a budget curve that
trains each budget at its own learning rate (chosen per budget on validation), and early stopping
set by an experiment rather than on the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import EarlyStopping
from omegaconf import OmegaConf

from gelora.table.cli import main as gelora_table
from tests.helpers import CONF, TINY, compose_train

RANKS = (1, 2, 4, 8)


def _resolved(conf: Path, *overrides: str):
    """The job config as ``gelora-train`` resolves it (``${hydra:runtime.choices.method}``
    included), composed in process from the config folder ``conf``."""
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[*overrides, "paths.output_dir=.", "logger=none"],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    del cfg.hydra
    OmegaConf.resolve(cfg)
    return cfg


@pytest.fixture
def conf_copy(tmp_path: Path) -> Path:
    """The repository's conf/, copied: a test may add an lr_choice or experiment file to it."""
    return Path(shutil.copytree(CONF, tmp_path / "conf"))


def test_the_budget_curve_grid_sweeps_every_rank_and_rate():
    cfg = compose_train("experiment=budget_curve_lr", hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    assert params["budget.rank"] == "1,2,4,8" and params["method"] == "lora,gelora_budget"
    assert params["task"] == "rotten_tomatoes" and str(params["seed"]) == "0"
    assert len(str(params["optimizer.lr"]).split(",")) >= 3
    cfg = _resolved(CONF, "experiment=budget_curve_lr", "budget.rank=8", "optimizer.lr=3e-4")
    assert cfg.budget.rank == 8 and cfg.optimizer.lr == 3e-4
    assert cfg.model.name == compose_train("experiment=setup/table_cpu").model.name


def _job(root: Path, method: str, rank: int, lr: float, val: float) -> None:
    """A completed job of budget_curve_lr's grid, as gelora-table reads it."""
    job = root / f"budget.rank={rank},method={method},optimizer.lr={lr},seed=0"
    (job / ".hydra").mkdir(parents=True)
    config = {
        "task": {"name": "rotten_tomatoes"},
        "seed": 0,
        "optimizer": {"lr": lr},
        "budget": {"rank": rank, "params": None},
    }
    OmegaConf.save(config, job / ".hydra" / "config.yaml")
    OmegaConf.save(
        {"hydra": {"runtime": {"choices": {"method": method}}}}, job / ".hydra" / "hydra.yaml"
    )
    record = {
        "status": "completed",
        "task": "rotten_tomatoes",
        "seed": 0,
        "variant": method,
        "metric": "accuracy",
        "learning_rate": lr,
        "metrics": {"test/accuracy": 0.5, "val/accuracy_best": val},
    }
    (job / "results.json").write_text(json.dumps(record))


def test_a_budget_curve_trains_each_rank_at_the_rate_chosen_for_it(tmp_path, conf_copy, capsys):
    # the best rate falls as the rank grows (lora) or stays put (gelora_budget)
    best = {
        "lora": {1: 3e-3, 2: 1e-3, 4: 1e-3, 8: 3e-4},
        "gelora_budget": {1: 1e-3, 2: 1e-3, 4: 1e-3, 8: 1e-3},
    }
    sweep = tmp_path / "lr_grid"
    for method, by_rank in best.items():
        for rank, chosen in by_rank.items():
            for lr in (3e-4, 1e-3, 3e-3):
                _job(sweep, method, rank, lr, 0.8 + (0.05 if lr == chosen else 0.0))
    out = conf_copy / "lr_choice" / "budget_curve.yaml"
    gelora_table([str(sweep), "--columns", "budget.rank", "--select-lr", str(out)])
    written = OmegaConf.to_container(OmegaConf.load(out).lr_choice)
    assert written == {
        m: {"rotten_tomatoes": {f"rank_{r}": lr for r, lr in by_rank.items()}}
        for m, by_rank in best.items()
    }
    for method, by_rank in best.items():
        for rank, chosen in by_rank.items():
            cfg = _resolved(conf_copy, "experiment=budget_curve", f"method={method}",
                            f"budget.rank={rank}", "seed=3")  # fmt: skip
            assert cfg.budget.rank == rank and cfg.optimizer.lr == chosen
    # the first CPU table's curve still runs every rank at the method's rank-2 rate
    rank_2 = OmegaConf.load(CONF / "lr_choice" / "table_cpu.yaml").lr_choice
    for method in ("lora", "gelora_budget"):
        for rank in RANKS:
            cfg = _resolved(CONF, "experiment=table_cpu_budget", f"method={method}",
                            f"budget.rank={rank}")  # fmt: skip
            assert cfg.optimizer.lr == rank_2[method].rotten_tomatoes


def test_a_budget_curve_without_a_rate_for_its_budget_does_not_compose(conf_copy):
    """A rate per task (no budget key) is not silently used for every budget."""
    (conf_copy / "lr_choice" / "budget_curve.yaml").write_text(
        "lr_choice:\n  lora:\n    rotten_tomatoes:\n      rank_2: 0.001\n"
    )
    assert _resolved(conf_copy, "experiment=budget_curve", "method=lora").optimizer.lr == 1e-3
    with pytest.raises(Exception, match="rank_4"):
        _resolved(conf_copy, "experiment=budget_curve", "method=lora", "budget.rank=4")


STOPPING_SETUP = """# @package _global_
early_stopping:
  patience: 3
  min_delta: 0.005
"""

STOPPING_EXPERIMENT = """# @package _global_
defaults:
  - setup/early_stopping
experiment_name: stopping_demo
"""


def test_an_experiment_can_train_until_validation_stops_improving(tmp_path, conf_copy, monkeypatch):
    (conf_copy / "experiment" / "setup" / "early_stopping.yaml").write_text(STOPPING_SETUP)
    (conf_copy / "experiment" / "stopping_demo.yaml").write_text(STOPPING_EXPERIMENT)
    cfg = _resolved(conf_copy, "experiment=stopping_demo")
    assert cfg.early_stopping.patience == 3 and cfg.early_stopping.min_delta == 0.005
    assert compose_train().early_stopping.patience is None  # off unless an experiment says so

    import gelora.stages.fit as fit

    seen: list = []
    build_trainer = fit.build_trainer

    def capture(*args, callbacks, **kwargs):
        seen.extend(callbacks)
        return build_trainer(*args, callbacks=callbacks, **kwargs)

    monkeypatch.setattr(fit, "build_trainer", capture)
    from gelora.pipeline import run

    with initialize_config_dir(config_dir=str(conf_copy), version_base="1.3"):
        job = compose(
            "train",
            overrides=["experiment=stopping_demo", *TINY, f"paths.output_dir={tmp_path / 'run'}"],
        )
    results = run(job)
    (stopping,) = [c for c in seen if isinstance(c, EarlyStopping)]
    assert stopping.patience == 3 and stopping.monitor == "val/accuracy"
    assert abs(stopping.min_delta) == 0.005  # Lightning stores it signed by the mode
    assert stopping.mode == "max"
    assert results["status"] == "completed"
    # debug=tiny's few steps hold fewer validations than the patience: the run reaches its cap,
    # and the record says it was not stopped early (test_early_stopping.py covers a stop).
    assert results["stopped_early"] is False
    assert results["optimizer_steps"] == job.trainer.max_steps


def test_adalora_records_its_final_adapter_parameters_and_the_table_reads_them(tiny_bert):
    """AdaLoRA's record holds its adapters' parameters at the start (init_r) and at the end
    (after pruning); gelora-table reads the end's, to compare with the budget in parameters."""
    from gelora.methods import AdaptSettings
    from gelora.methods.adalora import AdaLoRA, effective_adapter_params
    from gelora.models import find_target_modules
    from gelora.ranks import Budget
    from gelora.record import RunRecord
    from gelora.table.sweep_runs import final_adapter_params
    from tests.tiny_models import BERT_TARGETS

    targets = find_target_modules(tiny_bert, "bert.encoder.layer", BERT_TARGETS)
    policy = AdaLoRA()
    plan = policy.plan(targets, None, Budget(rank=2))
    model = policy.adapt(tiny_bert, plan, AdaptSettings(head_modules=("classifier",)))
    summary = policy.summary(model)
    # untrained: nothing pruned yet, init_r = 3 ranks of A, B and E on every matrix
    assert summary["final_adapter_params"] == effective_adapter_params(model)
    assert summary["final_adapter_params"] == sum(
        3 * (t.in_features + t.out_features + 1) for t in targets
    )
    # untrained, every singular value E is still 0: the tested weights use no adapter rank
    assert summary["tested_adapter_params"] == 0
    budget = Budget(rank=2).n_params(targets)
    summary["final_adapter_params"] = budget + 100  # as if pruned to just above the budget
    tested = summary.pop("tested_adapter_params")  # a record from before that field
    record = RunRecord.from_dict(
        {
            "status": "completed",
            "model": "tiny",
            "task": "t",
            "seed": 0,
            "trainable_adapter_params": summary["initial_adapter_params"],
            "budget_params": budget,
            "method_summary": summary,
        }
    )
    assert final_adapter_params(record) == budget + 100
    summary["tested_adapter_params"] = tested  # when the record has it, the table reads it
    assert final_adapter_params(RunRecord.from_dict(record.to_dict())) == 0


def test_test_rows_follow_the_validation_cap_unless_max_test_samples_says_otherwise():
    from gelora.config.checks import check_config
    from gelora.errors import ConfigError
    from gelora.stages.task import load_task

    def sizes(*overrides: str) -> tuple[int, int]:
        cfg = compose_train("paths.output_dir=.", "task.max_train_samples=50", *overrides)
        check_config(cfg)
        task = load_task(cfg.task)
        return len(task.validation.inputs()), len(task.test.inputs())

    assert sizes("task.max_eval_samples=100") == (100, 100)  # the first table's behaviour
    assert sizes("task.max_eval_samples=100", "task.max_test_samples=300") == (100, 300)
    assert sizes("task.max_eval_samples=100", "task.max_test_samples=null") == (100, 1276)
    with pytest.raises(ConfigError, match=r"task\.max_test_samples must be a positive integer"):
        check_config(compose_train("paths.output_dir=.", "task.max_test_samples=0"))
