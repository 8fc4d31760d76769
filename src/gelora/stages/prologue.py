"""The prologue both apps share: ``plan_stages(cfg)`` runs the stages up to the rank plan.

``gelora-train`` (``gelora.pipeline``) continues with ``fit_and_test``; ``gelora-plan``
(``gelora.plan``) turns the plan into a peft ``LoraConfig``. What only one of them does (the run
folder's resume and data checks, the datamodule, a method that is not a plan in LoRA layers
refused) it adds through ``PrologueHooks``; what ``gelora-plan --compare`` keeps across variants
sits in a ``StageCache``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from gelora.assets import cache_root
from gelora.atomic import write_json_atomic
from gelora.config.build import build
from gelora.config.checks import check_config
from gelora.data.task_data import TaskData
from gelora.errors import ConfigError
from gelora.methods.base import Method
from gelora.models import check_max_length
from gelora.ranks.budget import Budget
from gelora.ranks.plan import RankPlan
from gelora.ranks.scaling import Scaling
from gelora.reporting.plots import plot_id_profile, plot_rank_plan
from gelora.stages.backbone import Backbone, load_backbone, model_spec
from gelora.stages.plan import (
    PlanResult,
    check_budget_given,
    load_budget,
    load_method,
    load_scaling,
    make_plan,
)
from gelora.stages.profile import (
    EstimatorSettings,
    IDSample,
    ProfileResult,
    estimate_profile,
    estimation_device,
    id_sample_size,
)
from gelora.stages.task import load_task


@dataclass(frozen=True)
class Prologue:
    """The stage results up to the plan (``plan_stages``)."""

    scaling: Scaling
    method: Method
    budget: Budget | None
    task: TaskData  # the rows used (``PrologueHooks.profile_estimated`` may drop some)
    sample: IDSample
    backbone: Backbone
    profile: ProfileResult
    plan: PlanResult


class PrologueHooks:
    """What an app adds to the prologue at its steps; these defaults are ``gelora-plan``'s
    (no run folder, no training batches)."""

    resume_from: Path | None = None  # a checkpoint whose saved plan is the plan

    def config_checked(self, cfg: DictConfig) -> None:
        """After ``check_config``, before anything loads."""

    def method_loaded(self, method: Method) -> None:
        """Right after the method is built (refuse it here, before anything heavy loads)."""

    def task_loaded(self, task: TaskData) -> None:
        """After the task's rows are loaded and ``max_length`` checked against the model."""

    def backbone_loaded(self, task: TaskData, backbone: Backbone) -> None:
        """After the backbone is loaded, before the ID profile."""

    def profile_estimated(self, task: TaskData) -> TaskData:
        """After the ID profile, before the plan; returns the rows the run uses."""
        return task

    def train_batches(self) -> Iterable:
        """Training batches, for a method whose plan needs them."""
        raise ConfigError("this method needs training batches: use gelora-train")


@dataclass
class StageCache:
    """Tasks, backbones and ID profiles kept for the next config that shares them (the variants
    of ``gelora-plan --compare`` differ in a key or two), each under the config keys it depends
    on."""

    tasks: dict[str, TaskData] = field(default_factory=dict)
    backbones: dict[str, Backbone] = field(default_factory=dict)
    profiles: dict[str, ProfileResult] = field(default_factory=dict)


def plan_stages(
    cfg: DictConfig,
    *,
    hooks: PrologueHooks | None = None,
    cache: StageCache | None = None,
    reached: dict[str, Any] | None = None,
) -> Prologue:
    """Check ``cfg``, load the method, budget, task and backbone, estimate the ID profile and
    make the plan (or take a resumed checkpoint's, ``hooks.resume_from``).

    ``reached`` receives each stage's result as it comes (and ``timings``), so that a run that
    fails half-way still records what it got.

    Raises:
        ConfigError: a bad setting (``check_config``, ``max_length``, the task's metrics).
    """
    hooks = hooks or PrologueHooks()
    cache = cache if cache is not None else StageCache()
    reached = reached if reached is not None else {}
    timings = reached.setdefault("timings", {})
    check_config(cfg)
    hooks.config_checked(cfg)
    scaling = load_scaling(cfg.get("lora"))
    method = load_method(cfg.rank_policy, scaling)
    hooks.method_loaded(method)
    budget = load_budget(cfg.get("budget"))
    check_budget_given(method, budget)
    reached["scaling"] = scaling.to_dict()
    reached["method"] = method.name
    reached["budget"] = OmegaConf.to_container(cfg.budget) if "budget" in cfg else None
    task = reached["task"] = _task(cfg, cache)
    check_max_length(model_spec(cfg.model, task), cfg.task.max_length)  # config only, no weights
    hooks.task_loaded(task)
    sample = reached["sample"] = id_sample_size(cfg.estimator.n_samples, task)
    backbone = reached["backbone"] = _backbone(cfg, task, budget, cache)
    hooks.backbone_loaded(task, backbone)
    profile = reached["profile"] = _profile(cfg, backbone, task, sample, cache)
    timings["id_estimation_s"] = profile.seconds
    task = reached["task"] = hooks.profile_estimated(task)
    plan = reached["plan"] = make_plan(
        method,
        backbone,
        profile.profile,
        budget,
        train_batches=hooks.train_batches,
        resume_from=hooks.resume_from,
    )
    timings |= plan.timings
    return Prologue(scaling, method, budget, task, sample, backbone, profile, plan)


def _task(cfg: DictConfig, cache: StageCache) -> TaskData:
    """The task's rows, from ``cache`` when a config before had the same ``task``."""
    key = _key(cfg, "task")
    if key not in cache.tasks:
        cache.tasks[key] = load_task(cfg.task)
    return cache.tasks[key]


def _backbone(cfg: DictConfig, task: TaskData, budget: Budget | None, cache: StageCache):
    """The backbone, seeded with the run's seed first (the head's initial weights), from
    ``cache`` when a config before had the same task, model, budget, lora and seed."""
    key = _key(cfg, "task", "model", "budget", "lora", "seed")
    if key not in cache.backbones:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        cache.backbones[key] = load_backbone(cfg.model, task, budget, cfg.lora.dropout)
    return cache.backbones[key]


def _profile(
    cfg: DictConfig, backbone: Backbone, task: TaskData, sample: IDSample, cache: StageCache
) -> ProfileResult:
    """The ID profile, from ``cache`` when a config before had the same task, model, estimator
    and accelerator."""
    key = _key(cfg, "task", "model", "estimator", "trainer.accelerator")
    if key not in cache.profiles:
        cache.profiles[key] = estimate_profile(
            backbone,
            task,
            EstimatorSettings.from_config(cfg.estimator),
            build(cfg.estimator.id, "estimator.id"),
            sample,
            max_length=cfg.task.max_length,
            device=estimation_device(cfg.trainer.accelerator),
            cache_dir=cache_root() / "id_profiles" if cfg.estimator.cache else None,
        )
    return cache.profiles[key]


def _key(cfg: DictConfig, *keys: str) -> str:
    """The resolved values of ``keys`` in ``cfg``, as one string: what a kept stage depends on."""

    def resolved(key: str):
        node = OmegaConf.select(cfg, key)
        return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node

    return json.dumps({key: resolved(key) for key in keys}, sort_keys=True, default=str)


def write_plan_outputs(
    plan: RankPlan, profile: ProfileResult, backbone: Backbone, task_name: str, out_dir: Path
) -> None:
    """``rank_plan.json``, ``id_profile.png`` and ``rank_plan.png`` in the run directory."""
    write_json_atomic(out_dir / "rank_plan.json", plan.to_dict())
    plot_id_profile(
        profile.profile,
        out_dir / "id_profile.png",
        title=f"ID profile: {backbone.name} on {task_name} ({profile.pooling} pooling)",
    )
    plot_rank_plan(plan, backbone.n_blocks, out_dir / "rank_plan.png")
