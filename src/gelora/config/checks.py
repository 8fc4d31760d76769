"""Range checks of a composed config, in one table: each rule names its key and what it allows.

The schemas (``gelora.config.schema``) fix every value's type at compose time; these rules say
which values of that type make sense, plus the types of the few keys no schema holds (``seed``,
``resume``, ``checkpoint_every_n_steps`` at the top level) and of the ``Any`` keys. ``check_config``
runs first thing in a run, before any model or data is loaded, and raises one ``ConfigError``
line: ``<key> <what it must be>, got <value>``. It also builds the ID estimator (cheap), so that
the estimator's own arguments fail there too.
"""

from __future__ import annotations

import contextlib
import importlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from gelora.errors import ConfigError
from gelora.geometry.hidden_states import POOLINGS
from gelora.geometry.id_profile import MIN_RESAMPLE_POINTS, RESAMPLINGS
from gelora.geometry.near_duplicates import DEDUPS
from gelora.training.metrics import known_metric_names


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _positive_int(value: Any) -> bool:
    return _int(value) and value >= 1


def _finite(value: Any) -> bool:
    """A number that is neither inf nor nan: nan fails every comparison, so ``not v < 0`` and
    inf passes ``v > 0``; a rate or a decay must be a real number."""
    return _number(value) and math.isfinite(value)


# What a seed may be: Lightning's seed_everything (numpy's legacy seeding) and scikit-learn's
# random_state take 0 .. 2**32 - 1; lightning.fabric.utilities.seed.max_seed_value.
SEED_MAX = 2**32 - 1
SEED_RANGE = f"must be an integer in [0, {SEED_MAX}]"


def _seed(value: Any) -> bool:
    return _int(value) and 0 <= value <= SEED_MAX


def _optional(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or test(value)


@dataclass(frozen=True)
class Rule:
    key: str
    test: Callable[[Any], bool]
    requirement: str


# Lightning's accepted ``Trainer(precision=...)`` values (``lightning.fabric.connector
# ._PRECISION_INPUT``; a test checks the two agree), as text: checked before any model loads,
# since Lightning itself refuses a bad one only when the trainer is built, after the ID profile.
LIGHTNING_PRECISIONS = (
    "transformer-engine", "transformer-engine-float16", "16-true", "16-mixed", "bf16-true",
    "bf16-mixed", "32-true", "64-true", "64", "32", "16", "bf16",
)  # fmt: skip

RULES: tuple[Rule, ...] = (
    Rule("seed", _seed, SEED_RANGE),
    Rule("resume", lambda v: isinstance(v, bool), "must be true or false"),
    Rule("checkpoint_every_n_steps", _positive_int, "must be an integer >= 1"),
    Rule("progress_every_n_steps", _optional(_positive_int), "must be an integer >= 1"),
    Rule("rerun", lambda v: isinstance(v, bool), "must be true or false"),
    Rule("early_stopping.patience", _optional(_positive_int), "must be an integer >= 1 or null"),
    Rule(
        "early_stopping.min_delta",
        lambda v: _number(v) and math.isfinite(v) and v >= 0,
        "must be a finite number >= 0",
    ),
    Rule("threads", _optional(_positive_int), "must be a positive integer or null"),
    Rule(
        "estimator.n_samples",
        lambda v: v == "all" or (_int(v) and v >= 3),
        "must be an integer >= 3 or all",
    ),
    Rule("estimator.pooling", lambda v: v in POOLINGS, f"must be one of {', '.join(POOLINGS)}"),
    Rule("estimator.tokens_per_text", _positive_int, "must be an integer >= 1"),
    Rule("estimator.dedup", lambda v: v in DEDUPS, f"must be one of {', '.join(DEDUPS)}"),
    Rule(
        "estimator.dedup_threshold",
        lambda v: _finite(v) and v >= 0,
        "must be a finite number >= 0 (a share of the median nearest-neighbour distance)",
    ),
    Rule("estimator.batch_size", _positive_int, "must be a positive integer"),
    Rule("estimator.n_resamples", lambda v: v == 0 or v >= 2, "must be 0 (off) or >= 2"),
    Rule(
        "estimator.resampling",
        lambda v: v in RESAMPLINGS,
        f"must be one of {', '.join(RESAMPLINGS)}",
    ),
    Rule("estimator.resample_fraction", lambda v: 0 < v < 1, "must lie in (0, 1)"),
    Rule("estimator.sample_seed", _seed, SEED_RANGE),
    Rule("task.split_seed", _seed, SEED_RANGE),
    Rule("task.metrics", lambda v: len(v) > 0, "must be a non-empty list of metric names"),
    Rule("task.max_train_samples", _optional(_positive_int), "must be a positive integer or null"),
    Rule("task.max_eval_samples", _optional(_positive_int), "must be a positive integer or null"),
    Rule("task.max_test_samples", _optional(_positive_int), "must be a positive integer or null"),
    Rule("task.batch_size", _positive_int, "must be a positive integer"),
    Rule("task.eval_batch_size", _positive_int, "must be a positive integer"),
    Rule("task.max_length", _positive_int, "must be a positive integer"),
    Rule("task.doc_stride", _optional(_positive_int), "must be a positive integer or null"),
    Rule(
        "task.max_question_length", _optional(_positive_int), "must be a positive integer or null"
    ),
    Rule("task.n_best", _optional(_positive_int), "must be a positive integer or null"),
    Rule("task.max_answer_length", _optional(_positive_int), "must be a positive integer or null"),
    Rule("task.ifbench_prompts", _optional(lambda v: _int(v) and v >= 0), "must be >= 0 or null"),
    Rule(
        "task.mt_bench_questions", _optional(lambda v: _int(v) and v >= 0), "must be >= 0 or null"
    ),
    Rule("task.max_new_tokens", _optional(_positive_int), "must be a positive integer or null"),
    Rule(
        "task.generation_batch_size", _optional(_positive_int), "must be a positive integer or null"
    ),
    Rule("optimizer.lr", lambda v: _finite(v) and v > 0, "must be a finite number > 0"),
    Rule(
        "optimizer.head_lr",
        _optional(lambda v: _finite(v) and v > 0),
        "must be a finite number > 0 or null",
    ),
    Rule("optimizer.weight_decay", lambda v: _finite(v) and v >= 0, "must be a finite number >= 0"),
    Rule("optimizer.warmup_ratio", lambda v: 0 <= v < 1, "must lie in [0, 1)"),
    Rule("budget.rank", _optional(_positive_int), "must be a positive integer or null"),
    Rule("budget.params", _optional(_positive_int), "must be a positive integer or null"),
    Rule("lora.dropout", lambda v: 0 <= v < 1, "must lie in [0, 1)"),
    Rule("lora.scale", lambda v: _finite(v) and v > 0, "must be a finite number > 0"),
    Rule(
        "trainer.max_epochs",
        _optional(lambda v: v == -1 or v >= 1),
        "must be an integer >= 1, -1 (no limit) or null",
    ),
    Rule("trainer.max_steps", _optional(lambda v: v == -1 or v >= 1), "must be >= 1 or -1"),
    Rule(
        "trainer.val_check_interval",
        _optional(lambda v: (_int(v) and v >= 1) or (isinstance(v, float) and 0 < v <= 1)),
        "must be a share of an epoch in (0, 1], a number of batches >= 1, or null",
    ),
    Rule("trainer.accumulate_grad_batches", _optional(_positive_int), "must be an integer >= 1"),
    Rule(
        "trainer.precision",
        _optional(lambda v: str(v) in LIGHTNING_PRECISIONS),
        "must be one of Lightning's precisions: " + ", ".join(LIGHTNING_PRECISIONS),
    ),
    Rule(
        "trainer.gradient_clip_val",
        _optional(lambda v: _finite(v) and v >= 0),
        "must be a finite number >= 0 or null",
    ),
)


def missing_keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose value is OmegaConf's ``???`` (required, not given), in config order."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return [prefix.rstrip(".")] if node == "???" else []
    return [k for key, child in items for k in missing_keys(child, f"{prefix}{key}.")]


def import_loader_module(cfg: DictConfig) -> None:
    """Import the module of ``task.loader._target_`` before the metric check: a task kind
    defined beside its loader registers on that import (``gelora.kinds.register_kind``), so the
    check knows the kind's metrics whatever was imported before. A module that cannot be
    imported is left to the task stage, which names it in one line."""
    target = OmegaConf.select(cfg, "task.loader._target_", default=None)
    if isinstance(target, str) and "." in target:
        with contextlib.suppress(ImportError):
            importlib.import_module(target.rpartition(".")[0])


def check_config(cfg: DictConfig, rules: Sequence[Rule] = RULES) -> None:
    """Raise one ``ConfigError`` line for the first required key left out or value out of range.

    Raises:
        ConfigError: ``<key> is required`` or ``<key> <requirement>, got <value>``.
    """
    missing = missing_keys(OmegaConf.to_container(cfg, resolve=False))
    if missing:
        raise ConfigError(f"{missing[0]} is required: add {missing[0]}=... to the command line")
    try:  # an experiment's chosen rate (gelora_chosen_lr) says in one line what is missing
        OmegaConf.to_container(cfg.optimizer, resolve=True)
    except InterpolationResolutionError as error:
        said = str(error.msg).split("while resolving interpolation: ", 1)[-1].splitlines()[0]
        key = error.full_key or "optimizer"
        named = said.startswith((key, "optimizer.lr:"))  # lr_sources' messages name the rate
        raise ConfigError(said if named else f"{key}: {said}") from error
    for rule in rules:
        value = OmegaConf.select(cfg, rule.key, default=None)
        try:
            ok = rule.test(value)
        except TypeError:  # an Any key holding the wrong kind of value, e.g. a string
            ok = False
        if not ok:
            raise ConfigError(f"{rule.key} {rule.requirement}, got {value!r}")
    import_loader_module(cfg)
    known = known_metric_names()
    unknown = [name for name in cfg.task.metrics if name not in known]
    if unknown:
        raise ConfigError(f"task.metrics: {unknown[0]!r} is unknown; known: {', '.join(known)}")
    check_estimator(cfg.estimator.id)
    check_resample_blocks(cfg.estimator)
    noise_k = OmegaConf.select(cfg, "rank_policy.noise_k", default=None)
    if _number(noise_k) and noise_k > 0 and (cfg.estimator.n_resamples or 0) < 2:
        # noise-aware gaps read each layer's spread over resampled estimates (gelora.ranks)
        raise ConfigError(
            f"rank_policy.noise_k={noise_k} needs estimator.n_resamples >= 2, got "
            f"{cfg.estimator.n_resamples}"
        )


def check_resample_blocks(estimator: DictConfig) -> None:
    """``estimator.resampling=blocks`` splits the ID sample into ``n_resamples`` disjoint blocks:
    each must hold enough points to estimate from.

    Raises:
        ConfigError: naming ``estimator.n_resamples`` and ``estimator.n_samples``.
    """
    n_samples, n_resamples = estimator.n_samples, estimator.n_resamples
    if estimator.resampling != "blocks" or not n_resamples or not _int(n_samples):
        return  # n_samples=all: the sample's size is known once the task is (estimate_id_profile)
    if n_samples // n_resamples < MIN_RESAMPLE_POINTS:
        raise ConfigError(
            f"estimator.n_resamples={n_resamples} splits estimator.n_samples={n_samples} into "
            f"blocks of {n_samples // n_resamples} points (resampling=blocks); an estimate needs "
            f"at least {MIN_RESAMPLE_POINTS}: lower n_resamples or raise n_samples"
        )


def check_estimator(node: DictConfig, key: str = "estimator.id") -> Any:
    """Build the ID estimator from its config node and check its arguments, so that a bad one
    (``estimator.id.method=foo``) stops the run before any model loads, not after the hidden
    states are computed. Building one is cheap (scikit-learn style: ``__init__`` only stores its
    arguments); an estimator's ``check_params()``, where it has one, checks them.

    Raises:
        ConfigError: ``estimator.id: <what is wrong>``.
    """
    from gelora.config.build import build

    estimator = build(node, key)
    if not callable(getattr(estimator, "fit", None)):
        raise ConfigError(f"{key}: a {type(estimator).__name__} has no fit(X): not an estimator")
    check_params = getattr(estimator, "check_params", None)
    if callable(check_params):
        try:
            check_params()
        except (ValueError, TypeError, ImportError) as error:
            raise ConfigError(f"{key}: {error}") from error
    return estimator
