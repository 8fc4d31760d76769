"""One place per setting: the ID sample's settings live in conf/train.yaml's `estimator:` block,
never in the estimator group's files, and the Python API's defaults are the same values."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

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
