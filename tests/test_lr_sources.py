"""The learning rate resolved in one place (issue 45, item 4): every source under
``lr_sources``, ``optimizer.lr`` reading the first set (``gelora_lr``), the log line naming it
through the same function, ``--cfg job`` listing them, a bad value one line naming its key, and a
run recorded before ``lr_sources`` existed still the same settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from gelora.config.checks import check_config
from gelora.config.lr_choice import LR_SOURCES, first_source, lr_source
from gelora.errors import ConfigError
from gelora.run_folder import claim_run_folder, run_settings, settings_differences
from tests.helpers import compose_train, gelora_train, run_console_script

# A hand-written experiment that sets three sources at once, and a method file that fixes one.
EXPERIMENT = """# @package _global_
lr_sources:
  chosen_on_validation: ${gelora_chosen_lr:${hydra:runtime.choices.method},${task.name}}
  published: ${paper_rates[${task.name}]}
paper_rates:
  rotten_tomatoes: 3.0e-4
lr_choice:
  lora:
    rotten_tomatoes: 2.0e-3
"""
METHOD = """# @package _global_
defaults:
  - lora
lr_sources:
  fixed: 7.0e-4
"""


@pytest.fixture
def handwritten(tmp_path) -> list[str]:
    """Overrides adding ``experiment=handwritten`` and ``method=fixed_lora`` to ``conf/``."""
    (tmp_path / "experiment").mkdir()
    (tmp_path / "method").mkdir()
    (tmp_path / "experiment" / "handwritten.yaml").write_text(EXPERIMENT)
    (tmp_path / "method" / "fixed_lora.yaml").write_text(METHOD)
    return [f"hydra.searchpath=[file://{tmp_path}]", "paths.output_dir=."]


def _composed(*overrides: str):
    cfg = compose_train(*overrides, hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def _rate_and_source(*overrides: str) -> tuple[float, str]:
    cfg = _composed(*overrides)
    given = [o for o in overrides if not o.startswith(("hydra.", "paths."))]
    return OmegaConf.to_container(cfg.optimizer, resolve=True)["lr"], lr_source(cfg, given)


@pytest.mark.parametrize(
    ("overrides", "rate", "source"),
    [
        # each source wins when the ones before it are unset
        (("method=fixed_lora",), 7e-4, "a config file's number (lr_sources.fixed"),
        (("method=lora",), 2e-3, "chosen on validation (lr_sources.chosen_on_validation: ${"),
        (
            ("method=lora", "lr_sources.chosen_on_validation=null"),
            3e-4,
            "a published per-task rate (lr_sources.published: ${paper_rates[${task.name}]})",
        ),
        (
            ("method=lora", "lr_sources.chosen_on_validation=null", "lr_sources.published=null"),
            1e-3,
            "the task's default (task.lr of task=rotten_tomatoes)",
        ),
        (
            (
                "method=lora",
                "lr_sources.chosen_on_validation=null",
                "lr_sources.published=null",
                "task.lr=4e-3",
            ),
            4e-3,
            "the task's default (task.lr of task=rotten_tomatoes)",
        ),
        # a number on the command line wins over every source, and says so
        (("method=fixed_lora", "optimizer.lr=5e-5"), 5e-5, "the command line (optimizer.lr=5e-5)"),
        (("method=lora", "lr_sources.fixed=9e-4"), 9e-4, "the command line (lr_sources.fixed="),
    ],
)
def test_the_first_set_source_wins_and_the_log_names_it(handwritten, overrides, rate, source):
    got, said = _rate_and_source(*handwritten, "experiment=handwritten", *overrides)
    assert got == pytest.approx(rate)
    assert said.startswith(source), said


def test_the_order_is_the_one_documented():
    assert LR_SOURCES == ("fixed", "chosen_on_validation", "published", "task_default")
    docs = Path(__file__).resolve().parents[1] / "docs" / "experiments.md"
    section = docs.read_text().split("### Where a learning rate comes from", 1)[1][:2500]
    places = [section.index(f"`lr_sources.{name}`") for name in LR_SOURCES]
    assert places == sorted(places)
    sources = OmegaConf.create({"fixed": None, "published": "${x}", "task_default": 1e-3})
    assert first_source(sources) == "published"  # read as written: ${x} is never resolved


def test_a_rate_not_needed_is_shown_as_null_and_the_whole_config_resolves(handwritten):
    # optimizer.lr given, no rate chosen for this task: the record's resolved config is whole
    cfg = _composed(*handwritten, "experiment=handwritten", "method=lora", "task=snli",
                    "optimizer.lr=5e-4", "++paper_rates.snli=1e-4")  # fmt: skip
    sources = OmegaConf.to_container(cfg.lr_sources, resolve=True)
    assert sources == {"fixed": None, "chosen_on_validation": None, "published": 1e-4,
                       "task_default": 1e-3}  # fmt: skip
    assert OmegaConf.to_container(cfg.optimizer, resolve=True)["lr"] == 5e-4


def test_a_chosen_rate_the_run_needs_but_nobody_chose_is_one_line(handwritten):
    cfg = _composed(*handwritten, "experiment=handwritten", "method=lora", "task=snli")
    with pytest.raises(ConfigError) as raised:
        check_config(cfg)
    assert str(raised.value).startswith(
        "optimizer.lr: no learning rate chosen at lr_choice.lora.snli; write the experiment's"
    )


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (
            ["lr_sources.fixed=-1"],
            "optimizer.lr: lr_sources.fixed must be a finite number > 0, got -1.0",
        ),
        (
            ["lr_sources.task_default=0"],
            "optimizer.lr: lr_sources.task_default must be a finite number > 0, got 0.0",
        ),
        (["lr_sources.task_default=null"], "optimizer.lr: every lr_sources entry is null"),
        (["optimizer.lr=-1"], "optimizer.lr must be a finite number > 0, got -1.0"),
    ],
)
def test_a_bad_rate_is_one_line_naming_its_key(overrides, line):
    with pytest.raises(ConfigError) as raised:
        check_config(_composed("paths.output_dir=.", *overrides))
    assert str(raised.value).startswith(line)
    assert "\n" not in str(raised.value)


def test_a_rate_that_is_text_stops_the_command_in_one_line_naming_the_key(tmp_path):
    ran = gelora_train(tmp_path, "lr_sources.fixed=fast")
    assert ran.returncode != 0 and "Traceback" not in ran.stderr
    # Hydra's compose error for a typed key, as for every other (gelora.config.schema)
    assert ran.stderr.startswith("Error merging override lr_sources.fixed=fast\n")
    assert "Value 'fast' of type 'str' could not be converted to Float" in ran.stderr


def _cfg_job(*arguments: str) -> str:
    from gelora.train import cli

    ran = run_console_script(cli, ["gelora-train", "--cfg", "job", *arguments])
    assert ran.returncode == 0, ran.stderr[-2000:]
    return ran.stdout


def test_cfg_job_lists_every_source():
    command = ("experiment=table_cpu", "method=shuffled", "task=snli")
    listed = OmegaConf.create(_cfg_job(*command))
    assert list(listed.lr_sources) == list(LR_SOURCES)
    raw = {name: listed.lr_sources._get_node(name)._value() for name in LR_SOURCES}
    assert raw == {
        "fixed": None,
        "chosen_on_validation": "${gelora_chosen_lr:${hydra:runtime.choices.method},${task.name}}",
        "published": None,
        "task_default": "${task.lr}",
    }
    assert listed.optimizer._get_node("lr")._value() == "${gelora_lr:}"
    resolved = _cfg_job("--resolve", *command)
    assert "chosen_on_validation: 0.001" in resolved and "  lr: 0.001" in resolved


def _resolved(*overrides: str, old_way: bool = False) -> dict:
    """The resolved config; ``old_way``: as gelora wrote it before ``lr_sources`` (the experiment
    naming the chosen rate in ``optimizer.lr`` itself)."""
    cfg = _composed(*overrides, "paths.output_dir=.")
    if old_way:
        with open_dict(cfg):
            del cfg["lr_sources"]
            cfg.optimizer.lr = "${gelora_chosen_lr:${hydra:runtime.choices.method},${task.name}}"
    return OmegaConf.to_container(cfg, resolve=True)


def test_a_run_recorded_before_lr_sources_keeps_its_settings(tmp_path):
    """A record whose config was saved the old way (``optimizer.lr`` itself naming the chosen
    rate, no ``lr_sources``) is the same run as today's config of the same rate; another rate
    is not."""
    choice = ("experiment=table_cpu", "method=shuffled", "task=snli")
    saved = _resolved(*choice, old_way=True)
    assert "lr_sources" not in saved and saved["optimizer"]["lr"] == 0.001
    now = _resolved(*choice)
    assert now["lr_sources"]["chosen_on_validation"] == 0.001
    assert (
        settings_differences(run_settings(saved, "shuffled"), run_settings(now, "shuffled")) == []
    )
    record = {"status": "completed", "model": "m", "task": "snli", "seed": 0, "config": saved}
    (tmp_path / "results.json").write_text(json.dumps(record))
    claim = claim_run_folder(tmp_path, run_settings(now, None), resume=True)
    assert claim.completed is not None  # recognised: nothing to do
    other = _resolved(*choice, "lr_sources.chosen_on_validation=0.003")
    assert settings_differences(run_settings(saved, "x"), run_settings(other, "x")) == [
        "config.optimizer.lr: 0.001 -> 0.003"
    ]
