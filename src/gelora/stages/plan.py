"""Stage ``make_plan``: the method's rank plan at the budget, or the plan a checkpoint carries.

Also how the plan depends on the hidden-state sample: a method that reads the ID profile is
re-planned on every resampled profile (``gelora.ranks.sensitivity``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from gelora.config.build import build
from gelora.errors import ConfigError
from gelora.geometry.id_profile import IDProfile
from gelora.methods.base import Method
from gelora.methods.ours import as_method
from gelora.ranks.budget import Budget, budget_from_config
from gelora.ranks.plan import RankPlan
from gelora.ranks.policies import MeasuredIDs
from gelora.ranks.scaling import Scaling, scaling_from_config
from gelora.ranks.sensitivity import RankSensitivity, rank_sensitivity
from gelora.reporting.console import format_rank_plan
from gelora.stages.backbone import Backbone

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlanResult:
    """The plan and how it came about.

    Attributes:
        budget_params: the budget in parameters on these targets (``None`` without a budget).
        resumed_from: ``checkpoint`` and ``optimizer_step`` when the plan came from one.
        timings: seconds of the method's own preparation (EVA's SVD), by its timings key.
    """

    plan: RankPlan
    sensitivity: RankSensitivity | None
    budget_params: int | None
    resumed_from: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)


def load_method(rank_policy_cfg: DictConfig, scaling: Scaling) -> Method:
    """The configured rank policy or method, as a ``Method`` that scales its adapters by
    ``scaling`` (the run's one rule, ``lora.scaling``: every method gets the same)."""
    return as_method(build(rank_policy_cfg, "rank_policy", scaling=scaling.to_dict()))


def load_scaling(lora_cfg: DictConfig | None) -> Scaling:
    """The run's LoRA scaling rule (``lora.scaling``, ``lora.scale``)."""
    try:
        return scaling_from_config(lora_cfg)
    except ValueError as error:
        raise ConfigError(str(error)) from error


def check_budget_given(method: Method, budget: Budget | None) -> None:
    """Refuse, before any model loads, a method that cannot plan without a budget when none is
    set (``needs_budget``; a method without that attribute is taken to need none).

    Raises:
        ConfigError: ``method=<name> needs a budget: ...``.
    """
    if budget is None and getattr(method, "needs_budget", False):
        raise ConfigError(f"method={method.name} needs a budget: set budget.rank or budget.params")


def load_budget(budget_cfg: DictConfig | None) -> Budget | None:
    budget_cfg = budget_cfg or {}
    try:
        return budget_from_config(budget_cfg.get("rank"), budget_cfg.get("params"))
    except ValueError as error:
        raise ConfigError(str(error)) from error


def saved_rank_plan(checkpoint: Path) -> tuple[RankPlan, int]:
    """The rank plan a checkpoint was trained with, and its optimizer step (tensors and plain
    data only: ``weights_only=True`` refuses pickled objects)."""
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if "rank_plan" not in saved:
        raise ConfigError(f"{checkpoint} holds no rank plan: not a gelora checkpoint")
    return RankPlan.from_dict(saved["rank_plan"]), int(saved.get("global_step", 0))


def make_plan(
    method: Method,
    backbone: Backbone,
    profile: IDProfile,
    budget: Budget | None,
    *,
    train_batches: Callable[[], Iterable[dict]],
    resume_from: Path | None = None,
) -> PlanResult:
    """Plan ranks with ``method`` (after its ``prepare``), or take a checkpoint's saved plan.

    Raises:
        ConfigError: the method cannot plan with these settings (a missing budget, a bad
            argument), or the checkpoint is not a gelora checkpoint.
    """
    targets = list(backbone.targets)
    timings: dict[str, float] = {}
    resumed = None
    if resume_from is not None:  # the plan comes with the checkpoint: never recomputed
        plan, step = saved_rank_plan(resume_from)
        resumed = {"checkpoint": str(resume_from), "optimizer_step": step}
        log.info("resuming from %s (step %d) with its saved rank plan", resume_from, step)
    else:
        if method.prepare_timing is not None:
            if hasattr(method, "use_head"):  # it redraws the new head with its own seed
                method.use_head(backbone.adapt_settings.head_modules)
            started = time.perf_counter()
            method.prepare(backbone.model, train_batches, targets, budget)
            timings[method.prepare_timing] = round(time.perf_counter() - started, 3)
        try:
            plan = method.plan(targets, MeasuredIDs.of(profile), budget)  # IDs and stds
        except ValueError as error:
            raise ConfigError(f"method={method.name}: {error}") from error
    sensitivity = rank_sensitivity(method, targets, profile, plan, backbone.n_blocks, budget)
    log.info(format_rank_plan(plan, backbone.n_blocks, sensitivity))
    for note in plan.notes:
        log.info(note)
    return PlanResult(
        plan=plan,
        sensitivity=sensitivity,
        budget_params=budget.n_params(targets) if budget is not None else None,
        resumed_from=resumed,
        timings=timings,
    )
