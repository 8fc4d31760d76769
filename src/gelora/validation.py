"""Checks that turn a bad config or bad data into one clear line, before any model is loaded.

Each error names the key (or the file, split and row) and what it allows. ``validate_config``
runs first, on the config alone; ``check_budget_fits`` needs only the target shapes, which come
from the model's config on the meta device (no weights); the data checks run on the loaded task.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gelora.data.task_data import Split, TaskData
from gelora.geometry.hidden_states import POOLINGS
from gelora.geometry.id_profile import RESAMPLINGS
from gelora.ranks.budget import Budget
from gelora.ranks.plan import TargetModule
from gelora.training.metrics import METRICS


class ConfigError(ValueError):
    """A config value (or data) a user can fix; reported as one line naming the key."""


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _missing_keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose value is OmegaConf's ``???`` (required, not given), in config order."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return [prefix.rstrip(".")] if node == "???" else []
    return [k for key, child in items for k in _missing_keys(child, f"{prefix}{key}.")]


def validate_config(cfg: DictConfig) -> None:
    """Catch what would otherwise fail late (after loading a model) with a one-line error."""
    missing = _missing_keys(OmegaConf.to_container(cfg, resolve=False))
    if missing:
        raise ConfigError(f"{missing[0]} is required: add {missing[0]}=... to the command line")
    n_samples = cfg.estimator.n_samples
    if n_samples != "all" and (
        not isinstance(n_samples, int) or isinstance(n_samples, bool) or n_samples < 3
    ):
        raise ConfigError(f"estimator.n_samples must be an integer >= 3 or all, got {n_samples!r}")
    if cfg.estimator.pooling not in POOLINGS:
        raise ConfigError(
            f"estimator.pooling must be one of {', '.join(POOLINGS)}, got {cfg.estimator.pooling!r}"
        )
    n_resamples = cfg.estimator.n_resamples
    if not isinstance(n_resamples, int) or n_resamples < 0 or n_resamples == 1:
        raise ConfigError(f"estimator.n_resamples must be 0 (off) or >= 2, got {n_resamples!r}")
    if cfg.estimator.resampling not in RESAMPLINGS:
        raise ConfigError(
            f"estimator.resampling must be one of {', '.join(RESAMPLINGS)}, "
            f"got {cfg.estimator.resampling!r}"
        )
    fraction = cfg.estimator.resample_fraction
    if not isinstance(fraction, int | float) or not 0 < fraction < 1:
        raise ConfigError(
            f"estimator.resample_fraction must lie in (0, 1), got {cfg.estimator.resample_fraction}"
        )
    metrics = cfg.task.get("metrics")
    if not isinstance(metrics, Sequence) or isinstance(metrics, str) or not metrics:
        raise ConfigError(f"task.metrics must be a non-empty list of metric names, got {metrics!r}")
    for name in metrics:
        if name not in METRICS:
            raise ConfigError(f"task.metrics: {name!r} is unknown; known: {', '.join(METRICS)}")
    for key in ("max_train_samples", "max_eval_samples"):
        value = cfg.task.get(key)
        if value is not None and not _positive_int(value):
            raise ConfigError(f"task.{key} must be a positive integer or null, got {value!r}")
    for key in ("batch_size", "eval_batch_size", "max_length"):
        value = cfg.task.get(key)
        if not _positive_int(value):
            raise ConfigError(f"task.{key} must be a positive integer, got {value!r}")
    lr = cfg.optimizer.lr
    if not isinstance(lr, int | float) or isinstance(lr, bool) or not lr > 0:
        raise ConfigError(f"optimizer.lr must be a number > 0, got {lr!r}")
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool):
        raise ConfigError(f"seed must be an integer, got {cfg.seed!r}")
    for key in ("rank", "params"):
        value = (cfg.get("budget") or {}).get(key)
        if value is not None and not _positive_int(value):
            raise ConfigError(f"budget.{key} must be a positive integer or null, got {value!r}")
    dropout = cfg.lora.dropout
    if not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise ConfigError(f"lora.dropout must lie in [0, 1), got {dropout!r}")
    if cfg.model.get("trust_remote_code") not in (True, False):
        raise ConfigError(
            f"model.trust_remote_code must be true or false, got {cfg.model.trust_remote_code!r}"
        )


def check_budget_fits(budget: Budget | None, targets: Sequence[TargetModule]) -> None:
    """A budget must afford one rank on every target matrix (what every policy starts from)."""
    if budget is None:
        return
    floor = sum(t.lora_params(1) for t in targets)
    n_blocks = len({t.block for t in targets})
    if budget.n_params(targets) < floor:
        raise ConfigError(
            f"budget.params={budget.params:,} is below one rank per adapted matrix: the "
            f"{len(targets)} target matrices of {n_blocks} blocks need at least {floor:,} "
            "parameters (budget.rank=1)"
        )


MIN_ID_SAMPLE = 3  # TwoNN needs a first and second neighbour and two kept ratios


def check_sample_size(n_samples: int | str, task: TaskData) -> tuple[int, str | None]:
    """The hidden-state sample size, and a note when it is smaller than asked.

    ``estimator.n_samples`` is an upper bound: ``all``, or a number larger than the task's
    distinct training inputs, takes every one of them (with a one-line note saying so).

    Raises:
        ConfigError: fewer distinct training inputs than any estimator needs for a number.
    """
    distinct = len(set(task.train.inputs()))
    if distinct < MIN_ID_SAMPLE:
        raise ConfigError(
            f"task {task.name} has {distinct} distinct training inputs; the ID estimate needs "
            f"at least {MIN_ID_SAMPLE}"
        )
    if n_samples == "all":
        return distinct, None
    if n_samples > distinct:
        return distinct, (
            f"estimator.n_samples={n_samples} is more than the {distinct} distinct training "
            f"inputs of {task.name}: the ID sample takes all {distinct}"
        )
    return n_samples, None


def _clean_split(split: Split, name: str, task: TaskData) -> tuple[Split, list[str]]:
    """Drop rows whose text (or pair) is empty or blank, and regression rows without a finite
    target, counting both; labels outside the task's label set are an error."""
    keep, notes = [], []
    blank = missing = 0
    pairs = split.text_pairs
    for i, text in enumerate(split.texts):
        label = split.labels[i]
        if not str(text).strip() or (pairs is not None and not str(pairs[i]).strip()):
            blank += 1
            continue
        if task.problem == "regression" and not math.isfinite(float(label)):
            missing += 1  # labels outside a classification task's set fail in TaskData already
            continue
        keep.append(i)
    if blank:
        notes.append(f"{name}: dropped {blank} rows with an empty text")
    if missing:
        notes.append(f"{name}: dropped {missing} rows with a missing or non-finite target")
    if not keep:
        raise ConfigError(f"task {task.name}: the {name} split is empty after cleaning")
    return (split if len(keep) == len(split.texts) else split.subset(keep)), notes


def clean_task(task: TaskData) -> TaskData:
    """``task`` with every split checked by ``_clean_split``; drops are added to its notes."""
    notes = list(task.notes)
    cleaned = {}
    for name in ("train", "validation", "test"):
        split = getattr(task, name)
        if len(split.texts) == 0:
            raise ConfigError(f"task {task.name}: the {name} split is empty")
        cleaned[name], dropped = _clean_split(split, name, task)
        notes += dropped
    extra = {}
    for name, split in task.extra_tests.items():
        extra[name], dropped = _clean_split(split, name, task)
        notes += dropped
    return TaskData(
        name=task.name,
        train=cleaned["train"],
        validation=cleaned["validation"],
        test=cleaned["test"],
        label_names=task.label_names,
        notes=notes,
        problem=task.problem,
        extra_tests=extra,
    )
