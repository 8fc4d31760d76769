"""Stage results -> ``RunRecord`` (``gelora.record``), the schema of ``results.json``."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from gelora.data.task_data import TaskData
from gelora.kinds import kind_of
from gelora.record import RunRecord, redact_secrets
from gelora.stages.backbone import Backbone
from gelora.stages.fit import FitResult
from gelora.stages.plan import PlanResult
from gelora.stages.profile import IDSample, ProfileResult


def build_record(
    *,
    status: str,
    identity: dict[str, Any],
    config: Any,
    timings: dict[str, float],
    method: str | None = None,
    budget: dict[str, Any] | None = None,
    scaling: dict[str, Any] | None = None,
    metric_names: list[str] | None = None,
    task: TaskData | None = None,
    sample: IDSample | None = None,
    backbone: Backbone | None = None,
    profile: ProfileResult | None = None,
    plan: PlanResult | None = None,
    fit: FitResult | None = None,
    token_cache: dict[str, str] | None = None,
    error: str | None = None,
    traceback: str | None = None,
    run_dir: Path | None = None,
) -> RunRecord:
    """The record of a run that got as far as the stage results it is given.

    Paths into ``run_dir`` are written relative to it (``config.paths.output_dir`` is ``.``), so
    a record names no folder of the machine that made it and stays true when the folder moves.
    """
    found: dict[str, Any] = dict(identity)
    found |= {"method": method, "budget": budget, "config": redact_secrets(config)}
    paths = found["config"].get("paths") if isinstance(found["config"], dict) else None
    if run_dir is not None and isinstance(paths, dict) and "output_dir" in paths:
        paths["output_dir"] = "."
    found["scaling"] = scaling
    found["variant"] = identity.get("variant") or method
    if task is not None:
        found |= _task_fields(task)
    if sample is not None:
        found["id_sample"] = asdict(sample)
    if profile is not None:
        found |= _profile_fields(profile, found.get("id_sample"))
    if token_cache is not None:
        found["token_cache"] = token_cache
    if plan is not None:
        found |= _plan_fields(plan, backbone.n_blocks if backbone is not None else 0)
    if metric_names and (plan is not None or fit is not None):
        found |= {"metric": metric_names[0], "metric_names": list(metric_names)}
        if task is not None:
            kind = kind_of(task.problem)
            found["metric_modes"] = {name: kind.metric_mode(name) for name in metric_names}
    if fit is not None:
        found |= _fit_fields(fit)
    found |= {"status": status, "timings": timings, "error": error, "traceback": traceback}
    if run_dir is not None:
        for key in ("resumed_from", "adapter_dir", "benchmarks"):
            found[key] = relative_paths(found.get(key), run_dir)
    return RunRecord(**found)


def _task_fields(task: TaskData) -> dict[str, Any]:
    """The record's fields on the task's rows: sizes, notes, labels, evaluation rows' hashes."""
    return {
        "task_sizes": task.sizes(),
        "task_notes": list(task.notes),
        "labels": None if task.label_names is None else list(task.label_names),
        "eval_rows": {
            name: {"rows": len(split), "sha256": split.fingerprint()}
            for name, split in task.splits().items()
            if name != "train"
        },
    }


def _profile_fields(profile: ProfileResult, id_sample: dict | None) -> dict[str, Any]:
    """The record's fields on the ID profile; ``id_sample`` completed with the points the ID
    saw (tokens, near-copies dropped)."""
    fields = {
        "intrinsic_dims": profile.profile.dimensions,
        "id_profile": profile.profile.to_dict(),
        "pooling": profile.pooling,
        "id_profile_cache": profile.cache,
    }
    if profile.points is not None:
        fields["id_sample"] = {**(id_sample or {}), **profile.points}
    return fields


def _plan_fields(plan: PlanResult, n_blocks: int) -> dict[str, Any]:
    """The record's fields on the rank plan."""
    return {
        "budget_params": plan.budget_params,
        "resumed_from": plan.resumed_from,
        "rank_sensitivity": plan.sensitivity.to_dict() if plan.sensitivity else None,
        "ranks": plan.plan.ranks,
        "alphas": plan.plan.alphas,
        "block_ranks": plan.plan.block_ranks(n_blocks),
        "rank_plan_notes": list(plan.plan.notes),
        "planned_adapter_params": plan.plan.trainable_adapter_params,
    }


def _fit_fields(fit: FitResult) -> dict[str, Any]:
    """The record's fields on training and testing."""
    return {
        "metrics": fit.metrics,
        "test_checkpoint": fit.test_checkpoint,
        "optimizer_steps": fit.optimizer_steps,
        "stopped_early": fit.stopped_early,
        "best_step": fit.best_step,
        "trainable_adapter_params": fit.adapter_params,
        "trainable_params": fit.trainable_params,
        "total_params": fit.total_params,
        "method_summary": fit.method_summary,
        "distributed": fit.distributed,
        "adapter_dir": fit.adapter_dir,
        "benchmarks": (
            {"files": fit.benchmark_files, "ifbench_unscored": fit.benchmark_unscored}
            if fit.benchmark_files is not None
            else None
        ),
        "environment": fit.environment,
        "cost": fit.cost,
    }


def relative_paths(value: Any, run_dir: Path) -> Any:
    """``value`` with every string that is a path inside ``run_dir`` made relative to it."""
    if isinstance(value, dict):
        return {k: relative_paths(v, run_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [relative_paths(v, run_dir) for v in value]
    if isinstance(value, str) and Path(value).is_absolute():
        try:
            return Path(value).resolve().relative_to(Path(run_dir).resolve()).as_posix()
        except ValueError:
            return value
    return value
