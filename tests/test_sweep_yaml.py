"""Reading a job's Hydra files: ``gelora-table`` parses them with libyaml under OmegaConf's own
rules (``sweep_runs.load_plain_yaml``) and builds a ``DictConfig`` only for an interpolation
(``ConfigValues``); what it reads must be what ``OmegaConf.load`` reads."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from gelora.table.sweep_runs import ConfigValues, UnreadableJob, load_plain_yaml

HYDRA_LIKE = """\
seed: 3
optimizer:
  lr: 1e-3
  weight_decay: 1.0e-05
  betas: [0.9, 0.999]
task:
  name: sst2
  split_seed: 0
  when: 2026-12-03
  max_train_samples: null
  label: '007'
  flag: true
  ratio: .5
trainer:
  max_steps: ${oc.env:NO_SUCH_VARIABLE_FOR_GELORA,1500}
  max_epochs: ${seed}
  broken: ${no.such.key}
"""


def test_plain_values_are_what_omegaconf_load_reads(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(HYDRA_LIKE)
    plain = load_plain_yaml(path)
    assert plain == OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    assert plain["optimizer"]["lr"] == 1e-3  # YAML 1.1 alone would read the string "1e-3"
    assert plain["task"]["when"] == "2026-12-03"  # no timestamps, as OmegaConf


def test_select_resolves_an_interpolation_and_gives_none_where_omegaconf_does(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(HYDRA_LIKE)
    values, config = ConfigValues(load_plain_yaml(path)), OmegaConf.load(path)
    for key in (
        "seed", "optimizer.lr", "task.name", "task.label", "trainer.max_steps",
        "trainer.max_epochs", "trainer.broken", "trainer.absent", "optimizer.lr.deeper",
    ):  # fmt: skip
        expected = OmegaConf.select(config, key, default=None, throw_on_resolution_failure=False)
        assert values.select(key) == expected, key
    assert values.select("trainer.max_epochs") == 3 and values.select("trainer.broken") is None


def test_a_duplicate_key_and_broken_yaml_are_named_errors(tmp_path):
    twice = tmp_path / "twice.yaml"
    twice.write_text("seed: 1\nseed: 2\n")
    with pytest.raises(UnreadableJob, match=r"not valid YAML.*duplicate key seed"):
        load_plain_yaml(twice)
    broken = tmp_path / "broken.yaml"
    broken.write_text("task: [unclosed\n")
    with pytest.raises(UnreadableJob, match=r"broken\.yaml: not valid YAML"):
        load_plain_yaml(broken)
    with pytest.raises(UnreadableJob, match="cannot be read"):
        load_plain_yaml(tmp_path / "absent.yaml")
    with pytest.raises(TypeError, match="a job config is a mapping, not list"):
        ConfigValues([1, 2])


def _job_without_record(folder, lr_line: str):
    hydra = folder / ".hydra"
    hydra.mkdir(parents=True)
    (hydra / "config.yaml").write_text(
        f"seed: 2\nbase_lr: 3e-4\ntask:\n  name: sst2\noptimizer:\n  {lr_line}\n"
    )
    (hydra / "hydra.yaml").write_text("hydra:\n  runtime:\n    choices:\n      method: lora\n")
    return folder


def test_a_job_without_a_record_takes_its_rate_from_its_config(tmp_path):
    from gelora.table.sweep_runs import read_run

    plain = read_run(_job_without_record(tmp_path / "a", "lr: 1e-3"))
    interpolated = read_run(_job_without_record(tmp_path / "b", "lr: ${base_lr}"))
    through_hydra = read_run(_job_without_record(tmp_path / "c", "lr: ${hydra:runtime.x}"))
    assert (plain.status, plain.method, plain.task, plain.seed) == ("missing", "lora", "sst2", 2)
    assert (plain.lr, interpolated.lr, through_hydra.lr) == (1e-3, 3e-4, None)
