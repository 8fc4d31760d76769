"""One run: config -> task and model -> hidden states -> IDs -> rank plan -> injected model ->
training -> results. ``run`` calls the stages of ``gelora.stages`` in that order and writes
``results.json`` (a ``RunRecord``) whatever happens.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gelora.assets import cache_root
from gelora.config.lr_choice import lr_source
from gelora.data.task_data import TaskData
from gelora.errors import ConfigError
from gelora.logs import route_library_logs_to_root
from gelora.run_folder import (
    FolderClaim,
    check_resumed_data,
    check_writable,
    claim_run_folder,
    folder_lock,
    run_settings,
    save_hydra_files,
)
from gelora.stages.backbone import Backbone
from gelora.stages.fit import FitSettings, build_datamodule, fit_and_test, is_global_zero
from gelora.stages.prologue import PrologueHooks, plan_stages, write_plan_outputs
from gelora.stages.record import build_record
from gelora.training.interrupt import exit_on_next_ctrl_c
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
    _log_learning_rate(cfg)
    started = time.perf_counter()
    reached: dict[str, Any] = {}  # the stage results so far, for the record
    status, error_text, trace = "running", None, None
    on_ctrl_c = signal.getsignal(signal.SIGINT)  # put back as the run ends (a notebook's, say)
    try:
        _run_stages(cfg, out_dir, reached, claim, settings)
        status = "completed"
    except BaseException as error:
        status = "interrupted" if was_interrupted(error) else "failed"
        if was_ctrl_c(error):  # writing the record and finishing wandb: a second one quits
            exit_on_next_ctrl_c(out_dir)
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
                "learning_rate": OmegaConf.select(  # None when it cannot resolve
                    cfg, "optimizer.lr", default=None, throw_on_resolution_failure=False
                ),
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
            if status == "interrupted":
                log.error(resume_line(out_dir))
        _finish_wandb()
        if on_ctrl_c is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, on_ctrl_c)
    log.info("results: %s", out_dir / "results.json")
    return record.to_dict()


def was_interrupted(error: BaseException) -> bool:
    """Ctrl-C or SIGTERM: a ``KeyboardInterrupt``, Lightning's ``SIGTERMException``, or the
    ``SystemExit(1)`` Lightning raises while it handles a ``KeyboardInterrupt`` during fit (its
    context), which a record must call interrupted, not failed."""
    return isinstance(error, SIGTERMException) or was_ctrl_c(error)


def was_ctrl_c(error: BaseException) -> bool:
    """Ctrl-C: a ``KeyboardInterrupt``, or the ``SystemExit(1)`` Lightning raises while it
    handles one during fit."""
    return isinstance(error, KeyboardInterrupt) or (
        isinstance(error, SystemExit) and isinstance(error.__context__, KeyboardInterrupt)
    )


def _log_learning_rate(cfg: DictConfig) -> None:
    """The rate the run trains at and where it came from (``lr_source``); nothing when it does
    not resolve (the config check then stops the run, in one line)."""
    from hydra.core.hydra_config import HydraConfig

    lr = OmegaConf.select(cfg, "optimizer.lr", default=None, throw_on_resolution_failure=False)
    if lr is None:
        return
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    log.info("learning rate %s: %s", lr, lr_source(cfg, overrides))


def resume_line(out_dir: Path) -> str:
    """What resumes an interrupted run: its command with its run folder (a run resumes from its
    ``last.ckpt`` when its settings are the same), or, for a sweep job, the sweep's command."""
    import shlex

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return f"interrupted: {out_dir}/results.json says so; its last.ckpt resumes it"
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return (
            f"interrupted: run the sweep's command again with "
            f"hydra.sweep.dir={shlex.quote(str(hydra_cfg.sweep.dir))}: completed jobs are "
            "skipped, this one resumes from its last.ckpt"
        )
    overrides = [o for o in hydra_cfg.overrides.task if not o.startswith("hydra.run.dir=")]
    words = ["gelora-train", *overrides, f"hydra.run.dir={out_dir}"]
    return "interrupted; resume it with: " + " ".join(shlex.quote(w) for w in words)


def check_accelerator(trainer: DictConfig) -> None:
    """An accelerator asked for by name is on this machine, with as many devices as asked (else
    Lightning refuses it only once the task, model and profile are loaded).

    Raises:
        ConfigError: naming ``trainer.accelerator`` or ``trainer.devices``.
    """
    accelerator, devices = trainer.get("accelerator"), trainer.get("devices")
    if accelerator in ("gpu", "cuda"):
        found = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if found == 0:
            raise ConfigError(
                f"trainer.accelerator={accelerator}: no CUDA device on this machine; use "
                "trainer.accelerator=auto (CUDA when there is one) or cpu"
            )
        if isinstance(devices, int) and not isinstance(devices, bool) and devices > found:
            raise ConfigError(f"trainer.devices={devices}: this machine has {found} CUDA device(s)")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.accelerator=mps: MPS is not available on this machine")


def _check_validation_interval(trainer: DictConfig, train_batches: int) -> None:
    """A whole number of batches between validations fits in an epoch (Lightning refuses more,
    with a traceback, once the model has loaded and training starts).

    Raises:
        ConfigError: naming ``trainer.val_check_interval`` and the epoch's batches.
    """
    interval = trainer.get("val_check_interval")
    limit = trainer.get("limit_train_batches")  # what Lightning counts as the epoch's batches
    if isinstance(limit, int) and not isinstance(limit, bool):
        train_batches = min(train_batches, limit)
    elif isinstance(limit, float):
        train_batches = int(train_batches * limit)
    # (a null trainer key is left to Lightning's default: check_val_every_n_epoch is then 1;
    # no training batch at all, limit_train_batches=0, is the untrained row: nothing to check)
    whole = isinstance(interval, int) and not isinstance(interval, bool)
    if whole and train_batches > 0 and interval > train_batches:
        raise ConfigError(
            f"trainer.val_check_interval={interval} batches is more than the {train_batches} "
            "training batches of an epoch: lower it, or give a share of an epoch in (0, 1]"
        )


class _TrainHooks(PrologueHooks):
    """``gelora-train``'s part of the prologue: the resumed checkpoint's plan, the data it was
    trained on checked, the datamodule built before the ID profile and tokenised after it."""

    def __init__(self, cfg: DictConfig, claim: FolderClaim, reached: dict[str, Any]) -> None:
        self.cfg, self.claim, self.reached = cfg, claim, reached
        self.resume_from = claim.resume_from
        self.data: dict[str, str] = {}  # the splits' fingerprints, saved in every checkpoint
        self.datamodule: Any = None

    def config_checked(self, cfg: DictConfig) -> None:
        check_accelerator(cfg.trainer)
        if cfg.get("threads"):
            torch.set_num_threads(cfg.threads)

    def task_loaded(self, task: TaskData) -> None:
        self.data = {name: split.fingerprint() for name, split in task.splits().items()}
        check_resumed_data(self.claim, self.data)

    def backbone_loaded(self, task: TaskData, backbone: Backbone) -> None:
        cfg = self.cfg
        tokens = cache_root() / "tokenized" if cfg.task.cache_tokens else None
        self.datamodule = build_datamodule(
            task, backbone, cfg.task, cfg.seed, token_cache_dir=tokens
        )

    def profile_estimated(self, task: TaskData) -> TaskData:
        started = time.perf_counter()
        self.datamodule.setup("fit")  # every split, tokenised once
        self.reached["timings"]["tokenize_s"] = round(time.perf_counter() - started, 3)
        self.reached["token_cache"] = self.datamodule.token_cache_outcomes
        _check_validation_interval(self.cfg.trainer, len(self.datamodule.train_dataloader()))
        # the rows used: an instruction task drops those max_length leaves no response token in
        return self.datamodule.task

    def train_batches(self):
        return self.datamodule.train_dataloader()


def _run_stages(
    cfg: DictConfig,
    out_dir: Path,
    reached: dict[str, Any],
    claim: FolderClaim,
    settings: dict[str, Any],
) -> None:
    """The prologue (``plan_stages``, with the run folder's hooks), then ``fit_and_test``."""
    reached["timings"] = {}
    hooks = _TrainHooks(cfg, claim, reached)
    stages = plan_stages(cfg, hooks=hooks, reached=reached)
    if is_global_zero():
        write_plan_outputs(
            stages.plan.plan, stages.profile, stages.backbone, stages.task.name, out_dir
        )
    fit = reached["fit"] = fit_and_test(
        FitSettings.from_config(cfg),
        stages.method,
        stages.backbone,
        stages.task,
        hooks.datamodule,
        stages.profile,
        stages.plan,
        out_dir,
        run_state=RunStateCallback(settings, hooks.data),
    )
    reached["timings"] |= {"fit_s": fit.fit_s, "test_s": fit.test_s, **(fit.benchmark_s or {})}
