"""One place per setting: the ID sample's settings live in conf/train.yaml's `estimator:` block,
never in the estimator group's files, and the Python API's defaults are the same values."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from gelora.stages.profile import EstimatorSettings
from tests.helpers import CONF, compose_train


def test_the_sample_settings_are_written_once_and_every_estimator_reads_them():
    sample_keys = set(OmegaConf.load(CONF / "train.yaml").estimator)
    assert {"n_samples", "pooling", "sample_seed", "n_resamples"} <= sample_keys
    for option in sorted(Path(CONF / "estimator").glob("*.yaml")):
        assert set(OmegaConf.load(option)) == {"id"}, option.name  # the estimator alone
        cfg = compose_train(f"estimator={option.stem}", "paths.output_dir=.")
        assert set(cfg.estimator) == sample_keys | {"id"}


def test_the_python_api_defaults_are_the_configs():
    composed = compose_train("paths.output_dir=.").estimator
    for field in fields(EstimatorSettings):
        assert getattr(EstimatorSettings(), field.name) == composed[field.name], field.name


@pytest.mark.parametrize("preset", ["debug=tiny", "debug=smoke", "experiment=table_cpu2"])
def test_an_explicitly_chosen_logger_survives_every_preset(preset):
    # issue 44: `debug=tiny logger=wandb` made no wandb run (the preset set `logger: null`)
    extra = ["early_stopping.patience=3"] if preset.startswith("experiment") else []
    cfg = compose_train(preset, "logger=wandb", *extra)
    assert "wandb" in (cfg.logger or {}), preset
    assert "csv" in compose_train(preset, "logger=csv", *extra).logger
    if preset != "debug=smoke":  # smoke keeps the default logger; the others choose none
        assert not compose_train(preset, *extra).get("logger")
