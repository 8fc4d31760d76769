"""One run: config -> task and model -> hidden states -> IDs -> rank plan -> injected model ->
training -> results. ``run`` calls the stages of ``gelora.stages`` in that order and writes
``results.json`` (a ``RunRecord``) whatever happens.
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gelora.assets import cache_root
from gelora.atomic import write_json_atomic
from gelora.config.build import build
from gelora.config.checks import check_config
from gelora.logs import route_library_logs_to_root
from gelora.models import check_max_length
from gelora.ranks.plan import RankPlan
from gelora.reporting.plots import plot_id_profile, plot_rank_plan
from gelora.run_folder import (
    FolderClaim,
    check_resumed_data,
    check_writable,
    claim_run_folder,
    folder_lock,
    run_settings,
    save_hydra_files,
)
from gelora.stages.backbone import Backbone, load_backbone, model_spec
from gelora.stages.fit import build_datamodule, fit_and_test, is_global_zero
from gelora.stages.plan import (
    load_budget,
    load_method,
    load_scaling,
    make_plan,
)
from gelora.stages.profile import (
    EstimatorSettings,
    ProfileResult,
    estimate_profile,
    estimation_device,
    id_sample_size,
)
from gelora.stages.record import build_record
from gelora.stages.task import load_task
from gelora.training.run_state import RunStateCallback

log = logging.getLogger(__name__)


def _config_record(cfg: DictConfig) -> Any:
    """The resolved config, or the unresolved one when a required value is missing (the run then
    stops in ``check_config`` with an error naming the key)."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException:
        return OmegaConf.to_container(cfg, resolve=False)


def _finish_wandb() -> None:
    """Finish the wandb run, if one was started, and say in the run's log where it was written
    (wandb's own console lines are off: ``conf/logger/wandb.yaml``)."""
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is None:
        return
    files = wandb.run.settings.sync_dir
    wandb.finish()
    log.debug("wandb run written to %s; upload it with: wandb sync %s", files, files)


def run(cfg: DictConfig, variant: str | None = None) -> dict[str, Any]:
    """Run one fine-tune; returns the content of its ``results.json``, which records success,
    failure (with the error and traceback) or interruption.

    ``variant`` names the table row this run belongs to (the ``method`` config, e.g.
    ``gelora_budget``); by default, the method's name.

    The run folder holds one run (``gelora.run_folder``): a folder that already holds this
    completed run is left as it is and its record returned; a conflict (another process, a
    completed run or a checkpoint with other settings, a damaged checkpoint) raises
    ``RunFolderError`` before anything is loaded or written.
    """
    route_library_logs_to_root()
    out_dir = Path(cfg.paths.output_dir)
    check_writable(out_dir)
    global_zero = is_global_zero()
    with folder_lock(out_dir) if global_zero else contextlib.nullcontext():
        settings = run_settings(_config_record(cfg), variant)
        claim = claim_run_folder(
            out_dir,
            settings,
            resume=cfg.get("resume") is not False,
            rerun=cfg.get("rerun") is True,
            global_zero=global_zero,
        )
        if claim.completed is not None:
            score = claim.completed.test_score
            log.info(
                "%s already holds this run, completed (test/%s = %s): nothing to do; "
                "rerun=true runs it again and moves this one to superseded/",
                out_dir,
                claim.completed.metric,
                "n/a" if score is None else f"{score:.4f}",
            )
            return claim.completed.to_dict()
        if global_zero:
            save_hydra_files(out_dir, cfg)
        return _run_claimed(cfg, variant, out_dir, claim, settings)


def _run_claimed(
    cfg: DictConfig,
    variant: str | None,
    out_dir: Path,
    claim: FolderClaim,
    settings: dict[str, Any],
) -> dict[str, Any]:
    log.info("run directory: %s", out_dir)
    started = time.perf_counter()
    reached: dict[str, Any] = {}  # the stage results so far, for the record
    status, error_text, trace = "running", None, None
    try:
        _run_stages(cfg, out_dir, reached, claim, settings)
        status = "completed"
    except BaseException as error:
        stopped = isinstance(error, (KeyboardInterrupt, SIGTERMException))
        status = "interrupted" if stopped else "failed"
        error_text, trace = f"{type(error).__name__}: {error}", traceback.format_exc()
        raise
    finally:
        timings = dict(reached.pop("timings", {}))
        timings["total_s"] = round(time.perf_counter() - started, 3)
        record = build_record(
            status=status,
            identity={
                "model": cfg.model.name,
                "task": cfg.task.name,
                "seed": cfg.seed,
                "variant": variant,
                "learning_rate": cfg.optimizer.lr,
            },
            config=_config_record(cfg),
            timings=timings,
            metric_names=list(cfg.task.metrics),
            error=error_text,
            traceback=trace,
            run_dir=out_dir,
            **reached,
        )
        if is_global_zero():  # one results.json per run, however many processes train it
            record.write(out_dir / "results.json")
        _finish_wandb()
    log.info("results: %s", out_dir / "results.json")
    return record.to_dict()


def _run_stages(
    cfg: DictConfig,
    out_dir: Path,
    reached: dict[str, Any],
    claim: FolderClaim,
    settings: dict[str, Any],
) -> None:
    timings: dict[str, float] = {}
    reached["timings"] = timings
    check_config(cfg)
    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)
    scaling = load_scaling(cfg.get("lora"))
    method = load_method(cfg.rank_policy, scaling)
    budget = load_budget(cfg.get("budget"))
    reached["scaling"] = scaling.to_dict()
    reached["method"] = method.name
    reached["budget"] = OmegaConf.to_container(cfg.budget) if "budget" in cfg else None
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    task = reached["task"] = load_task(cfg.task)
    check_max_length(model_spec(cfg.model, task), cfg.task.max_length)  # config only, no weights
    data = {name: split.fingerprint() for name, split in task.splits().items()}
    check_resumed_data(claim, data)
    sample = reached["sample"] = id_sample_size(cfg.estimator.n_samples, task)
    backbone = reached["backbone"] = load_backbone(cfg.model, task, budget, cfg.lora.dropout)
    tokens = cache_root() / "tokenized" if cfg.task.cache_tokens else None
    datamodule = build_datamodule(task, backbone, cfg.task, cfg.seed, token_cache_dir=tokens)
    profile = reached["profile"] = estimate_profile(
        backbone,
        task,
        EstimatorSettings.from_config(cfg.estimator),
        build(cfg.estimator.id, "estimator.id"),
        sample,
        max_length=cfg.task.max_length,
        device=estimation_device(cfg.trainer.accelerator),
        cache_dir=cache_root() / "id_profiles" if cfg.estimator.cache else None,
    )
    timings["id_estimation_s"] = profile.seconds
    started = time.perf_counter()
    datamodule.setup("fit")  # every split, tokenised once
    timings["tokenize_s"] = round(time.perf_counter() - started, 3)
    reached["token_cache"] = datamodule.token_cache_outcomes
    # the rows used: an instruction task drops those max_length leaves no response token in
    task = reached["task"] = datamodule.task

    def train_batches():
        return datamodule.train_dataloader()

    plan = reached["plan"] = make_plan(
        method,
        backbone,
        profile.profile,
        budget,
        train_batches=train_batches,
        resume_from=claim.resume_from,
    )
    timings |= plan.timings
    if is_global_zero():
        write_plan_outputs(plan.plan, profile, backbone, task.name, out_dir)
    fit = reached["fit"] = fit_and_test(
        cfg,
        method,
        backbone,
        task,
        datamodule,
        profile,
        plan,
        out_dir,
        run_state=RunStateCallback(settings, data),
    )
    timings |= {"fit_s": fit.fit_s, "test_s": fit.test_s, **(fit.benchmark_s or {})}


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
