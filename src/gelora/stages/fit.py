"""Stage ``fit_and_test``: adapters in, training with checkpoints, the best checkpoint tested,
the adapter exported in peft's format.

The adapters go in inside Lightning's ``configure_model`` (``LoRAClassifierModule``): after the
processes of a distributed run have joined and rank 0's plan was broadcast, before DDP or FSDP
wraps the model.
"""

from __future__ import annotations

import logging
import math
import platform
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from gelora.config.build import build
from gelora.data.task_data import TaskData
from gelora.kinds import kind_of
from gelora.lora.export import save_adapter
from gelora.methods.base import Method
from gelora.ranks.plan import RankPlan
from gelora.record import redact_secrets
from gelora.reporting.console import format_parameter_budget
from gelora.stages.backbone import Backbone
from gelora.stages.plan import PlanResult
from gelora.stages.profile import ProfileResult
from gelora.stages.provenance import code_provenance
from gelora.training.interrupt import SecondCtrlCQuits
from gelora.training.loggers import (
    ModelSummaryToLog,
    ProgressLines,
    log_plan_charts,
    plan_config,
)
from gelora.training.module import LoRAClassifierModule
from gelora.training.run_state import RunFolderCheckpoint, RunStateCallback

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitResult:
    """What training and testing gave.

    Attributes:
        metrics: every logged ``val/...`` and ``test.../...`` value (finite, checked); an
            instruction task adds ``test/ifbench_...`` (``gelora.evaluation.benchmarks``).
        test_checkpoint: ``best validation`` or ``final`` (no checkpoint was saved).
        best_step: the optimizer step of the tested best-validation checkpoint.
        adapter_params: LoRA parameters trained (at the start, for a pruning method).
        plan: the plan the model was trained with (rank 0's, in a distributed run).
    """

    metrics: dict[str, float]
    test_checkpoint: str
    optimizer_steps: int
    best_step: int | None
    adapter_params: int
    trainable_params: int
    total_params: int
    distributed: dict[str, Any]
    method_summary: dict[str, Any] | None
    adapter_dir: str | None
    environment: dict[str, str]
    plan: RankPlan
    fit_s: float
    test_s: float
    benchmark_s: dict[str, float] | None = None  # instruction tasks: ifbench_s, mt_bench_s
    benchmark_files: dict[str, str] | None = None
    benchmark_unscored: dict[str, int] | None = None
    stopped_early: bool = False  # early_stopping.patience ran out before the step cap
    cost: dict[str, Any] | None = None  # peak memory and training throughput (RunRecord.cost)


def stopped_before_cap(trainer: L.Trainer) -> bool:
    """Whether early stopping ended training before its cap: patience ran out at an optimizer
    step short of the cap, the smaller of ``trainer.max_steps`` and ``max_epochs`` whole epochs
    (a patience that runs out at the cap's own last validation did not end the run early).

    The epoch cap is counted in steps, not read from ``trainer.current_epoch``: a patience that
    runs out inside the last epoch also leaves ``current_epoch == max_epochs`` behind it.
    """
    patience_ran_out = any(
        isinstance(c, EarlyStopping) and c.wait_count >= c.patience for c in trainer.callbacks
    )
    return patience_ran_out and trainer.global_step < step_cap(trainer)


def step_cap(trainer: L.Trainer) -> float:
    """The optimizer steps a run may take: ``max_steps`` (when > 0) or ``max_epochs`` epochs of
    ``ceil(num_training_batches / accumulate_grad_batches)`` steps, whichever is smaller."""
    caps = [float(trainer.max_steps)] if trainer.max_steps > 0 else []
    epochs, batches = trainer.max_epochs, trainer.num_training_batches
    if epochs is not None and epochs >= 0 and math.isfinite(batches):
        caps.append(epochs * math.ceil(batches / trainer.accumulate_grad_batches))
    return min(caps, default=math.inf)


def saved_best(path: Path, state_key: str) -> tuple[int, float | None]:
    """The optimizer step a best checkpoint was saved at, and the monitored score it was saved
    with (its own callback state), read once (tensors and plain data only)."""
    # mmap: only the header and the small entries are read, not the saved weights
    saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    score = (saved.get("callbacks") or {}).get(state_key, {}).get("best_model_score")
    return int(saved["global_step"]), None if score is None else float(score)


def is_global_zero() -> bool:
    """Whether this process is global rank 0 (Lightning reads the rank from the launcher's
    environment: ``RANK``, ``LOCAL_RANK``, ``SLURM_PROCID``); only it writes run files."""
    return rank_zero_only.rank == 0


def build_datamodule(
    task: TaskData,
    backbone: Backbone,
    task_cfg: DictConfig,
    seed: int,
    token_cache_dir: Path | None = None,
):
    """The task kind's datamodule (``TaskKind.datamodule``): windows over contexts for extractive
    QA, chat-formatted examples for instruction tuning, else texts."""
    common = {  # what every task kind's datamodule takes from the task config
        "max_length": task_cfg.max_length,
        "batch_size": task_cfg.batch_size,
        "eval_batch_size": task_cfg.eval_batch_size,
        "seed": seed,
        "group_by_length": task_cfg.group_by_length,
    }
    return kind_of(task.problem).datamodule(
        task, backbone.tokenizer, task_cfg, token_cache_dir=token_cache_dir, **common
    )


def build_loggers(logger_cfg: Mapping[str, Any] | None) -> list:
    """The configured Lightning loggers, by name (``logger``)."""
    return [
        build(OmegaConf.create(node), f"logger.{name}") for name, node in (logger_cfg or {}).items()
    ]


def log_plan(
    loggers: list,
    hyperparams: dict[str, Any] | None,
    profile: ProfileResult,
    plan: RankPlan,
    n_blocks: int,
    parameter_counts: dict[str, int],
    out_dir: Path,
) -> None:
    """The config (``hyperparams``: resolved, secrets still in, and the plan's
    ``rank_plan/...`` keys), the ID profile, the rank plan and the parameter counts, to every
    logger; to wandb, the profile and plan as charts (docs/dashboards.md)."""
    block_ranks = plan.block_ranks(n_blocks)
    scalars = {f"id/layer_{i:02d}": d for i, d in enumerate(profile.profile.dimensions)}
    scalars |= {f"rank/layer_{i:02d}": r for i, r in enumerate(block_ranks)}
    scalars["rank/total"] = plan.total_rank
    scalars |= {f"params/{name}": count for name, count in parameter_counts.items()}
    plan_keys = plan_config(block_ranks, plan.total_rank)
    for logger in loggers:
        logger.log_hyperparams({**redact_secrets(hyperparams or {}), **plan_keys})
        logger.log_metrics(scalars, step=0)
        if isinstance(logger, WandbLogger):  # a dashboard shows the plan without any code
            dims = profile.profile
            log_plan_charts(logger, dims.dimensions, dims.stds, block_ranks)
            logger.log_table(
                key="rank_plan",
                columns=["module", "block", "rank", "alpha", "params"],
                data=[[a.module_name, a.block, a.rank, a.alpha, a.n_params] for a in plan.adapters],
            )
            figures = [out_dir / "id_profile.png", out_dir / "rank_plan.png"]
            logger.log_image(key="plots", images=[str(f) for f in figures if f.exists()])


def build_trainer(
    trainer_cfg: DictConfig | Mapping[str, Any], *, loggers: list, callbacks: list, out_dir: Path
) -> L.Trainer:
    """Lightning's Trainer from ``trainer``; ``null`` values keep Lightning's defaults."""
    if OmegaConf.is_config(trainer_cfg):
        trainer_cfg = OmegaConf.to_container(trainer_cfg, resolve=True)
    given = {key: value for key, value in trainer_cfg.items() if value is not None}
    return build(
        OmegaConf.create(given),
        "trainer",
        logger=loggers or False,
        callbacks=callbacks,
        default_root_dir=str(out_dir),
    )


@dataclass(frozen=True)
class BenchmarkSettings:
    """After-test generation of an instruction task (``gelora.evaluation.benchmarks``)."""

    ifbench_prompts: int | None
    mt_bench_questions: int | None
    max_new_tokens: int | None
    batch_size: int | None
    run_name: str  # model and task: the answers' model id adds the variant and the seed
    seed: int


@dataclass(frozen=True)
class FitSettings:
    """What ``fit_and_test`` reads from the config, read once (``from_config``).

    Attributes:
        metrics: the task's metrics; the first is the checkpoint and early-stopping monitor.
        trainer, loggers, extra_callbacks: the resolved ``trainer``, ``logger`` and
            ``extra_callbacks`` nodes (``_target_`` nodes, built in ``fit_and_test``).
        hyperparams: the resolved config the loggers record (``None`` without loggers).
        patience, min_delta: ``early_stopping`` (no patience: train to the step cap).
    """

    metrics: tuple[str, ...]
    lr: float
    head_lr: float | None
    weight_decay: float
    warmup_ratio: float
    max_length: int
    checkpoint_every_n_steps: int | None
    progress_every_n_steps: int
    patience: int | None
    min_delta: float
    trainer: Mapping[str, Any]
    loggers: Mapping[str, Any]
    extra_callbacks: Mapping[str, Any]
    hyperparams: dict[str, Any] | None
    benchmarks: BenchmarkSettings

    @classmethod
    def from_config(cls, cfg: DictConfig) -> FitSettings:
        """The settings of a composed ``train`` config."""
        stopping = cfg.get("early_stopping") or {}
        loggers = _resolved(cfg.get("logger"))
        task = cfg.task
        return cls(
            metrics=tuple(task.metrics),
            lr=cfg.optimizer.lr,
            head_lr=cfg.optimizer.head_lr,
            weight_decay=cfg.optimizer.weight_decay,
            warmup_ratio=cfg.optimizer.warmup_ratio,
            max_length=task.max_length,
            checkpoint_every_n_steps=cfg.checkpoint_every_n_steps,
            progress_every_n_steps=cfg.get("progress_every_n_steps") or 50,
            patience=stopping.get("patience") or None,
            min_delta=stopping.get("min_delta") or 0.0,
            trainer=_resolved(cfg.trainer),
            loggers=loggers,
            extra_callbacks=_resolved(cfg.get("extra_callbacks")),
            hyperparams=OmegaConf.to_container(cfg, resolve=True) if loggers else None,
            benchmarks=BenchmarkSettings(
                ifbench_prompts=task.get("ifbench_prompts"),
                mt_bench_questions=task.get("mt_bench_questions"),
                max_new_tokens=task.get("max_new_tokens"),
                batch_size=task.get("generation_batch_size"),
                run_name=f"{cfg.model.name}-{task.name}",
                seed=cfg.seed,
            ),
        )

    @property
    def primary(self) -> str:
        """The metric the best checkpoint and early stopping watch."""
        return self.metrics[0]


def _resolved(node: DictConfig | None) -> dict[str, Any]:
    """A config node as plain resolved data (``{}`` for none)."""
    return OmegaConf.to_container(node, resolve=True) if node else {}


class _PlanReport(L.Callback):
    """The plan the model was adapted with and the parameter counts right after (read from the
    module, ``configure_model``), to the console and every logger as training starts."""

    def __init__(self, loggers: list, settings: FitSettings, profile, n_blocks: int, out_dir):
        self.loggers, self.settings, self.profile = loggers, settings, profile
        self.n_blocks, self.out_dir = n_blocks, out_dir

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        counts = asdict(pl_module.parameter_counts)
        if is_global_zero():
            log.info(format_parameter_budget(**counts))
        log_plan(
            self.loggers,
            self.settings.hyperparams,
            self.profile,
            pl_module.rank_plan,
            self.n_blocks,
            counts,
            self.out_dir,
        )


def build_module(
    settings: FitSettings,
    method: Method,
    backbone: Backbone,
    task: TaskData,
    datamodule,
    plan: RankPlan,
    *,
    initialize: bool,
) -> LoRAClassifierModule:
    """The task kind's LightningModule; it puts ``method``'s adapters in at ``configure_model``
    (``initialize=False`` on resume: the checkpoint brings the weights)."""
    common = {
        "rank_plan": plan,
        "metrics": list(settings.metrics),
        "test_splits": datamodule.test_split_names,
        "lr": settings.lr,
        "head_lr": settings.head_lr,
        "weight_decay": settings.weight_decay,
        "warmup_ratio": settings.warmup_ratio,
        "adapt": partial(_adapt, method=method, backbone=backbone, initialize=initialize),
    }
    return kind_of(task.problem).module(backbone.model, task, datamodule, settings, **common)


def _adapt(model, plan: RankPlan, *, method: Method, backbone: Backbone, initialize: bool):
    """Runs in ``configure_model``, with rank 0's plan (see ``LoRAClassifierModule``)."""
    return method.adapt(model, plan, backbone.adapt_settings, initialize=initialize)


def build_callbacks(
    settings: FitSettings,
    method: Method,
    report: L.Callback,
    out_dir: Path,
    *,
    run_state: RunStateCallback | None,
    with_lr: bool,
    mode: str = "max",
) -> tuple[RunFolderCheckpoint, list[L.Callback]]:
    """The best-validation checkpoint, and every callback of the run (that one included);
    ``mode``: the task kind's direction of the monitored metric (``TaskKind.metric_mode``)."""
    primary = settings.primary
    best = RunFolderCheckpoint(
        dirpath=out_dir / "checkpoints",
        filename="best",
        monitor=f"val/{primary}",
        mode=mode,  # min for a loss
        save_top_k=1,
        # after each validation, as EarlyStopping below: left to Lightning, an integer
        # trainer.val_check_interval=1 (every batch) reads as 1.0 (once an epoch) and the best
        # checkpoint would be saved at epoch ends only
        save_on_train_epoch_end=False,
    )
    periodic = RunFolderCheckpoint(  # last.ckpt every few steps: what a killed run resumes from
        dirpath=out_dir / "checkpoints",
        save_top_k=0,
        save_last=True,
        every_n_train_steps=settings.checkpoint_every_n_steps,
    )
    progress = ProgressLines(settings.progress_every_n_steps)  # plain lines off a terminal
    # first: after a first Ctrl-C, a second quits at once, whatever the other callbacks do then
    callbacks = [SecondCtrlCQuits(out_dir), report, best, periodic, ModelSummaryToLog(), progress]
    callbacks += method.callbacks()
    if run_state is not None:
        callbacks.append(run_state)
    if with_lr:  # the learning rate per step: warm-up and decay on the dashboard
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    if settings.patience:  # until validation stops improving; trainer.max_steps caps it
        callbacks.append(
            EarlyStopping(
                monitor=f"val/{primary}",
                mode=mode,
                patience=settings.patience,
                min_delta=settings.min_delta,
                # after each validation: Lightning's default reads trainer.val_check_interval=1
                # (every batch) as 1.0 (once an epoch) and would check at epoch ends only
                check_on_train_epoch_end=False,
            )
        )
    callbacks += [  # e.g. fault injection in the tests
        build(OmegaConf.create(node), f"extra_callbacks.{name}")
        for name, node in settings.extra_callbacks.items()
    ]
    return best, callbacks


def fit_and_test(
    settings: FitSettings,
    method: Method,
    backbone: Backbone,
    task: TaskData,
    datamodule,
    profile: ProfileResult,
    plan: PlanResult,
    out_dir: Path,
    run_state: RunStateCallback | None = None,
) -> FitResult:
    """Train the planned adapters, test the best-validation checkpoint, export the adapter.

    A run directory holding ``checkpoints/last.ckpt`` resumes from it (``plan.resumed_from``,
    checked by ``gelora.run_folder.claim_run_folder``); on SIGTERM, ``last.ckpt`` is written at
    the step Lightning stopped at, then the run ends. ``run_state`` puts the run's settings and
    the generators' states into every checkpoint (``gelora.training.run_state``).
    """
    resume_from = Path(plan.resumed_from["checkpoint"]) if plan.resumed_from else None
    loggers = build_loggers(settings.loggers)
    module = build_module(
        settings, method, backbone, task, datamodule, plan.plan, initialize=resume_from is None
    )
    report = _PlanReport(loggers, settings, profile, backbone.n_blocks, out_dir)
    kind = kind_of(task.problem)
    best, callbacks = build_callbacks(
        settings,
        method,
        report,
        out_dir,
        run_state=run_state,
        with_lr=bool(loggers),
        mode=kind.metric_mode(settings.primary),
    )
    trainer = build_trainer(settings.trainer, loggers=loggers, callbacks=callbacks, out_dir=out_dir)
    fit_s = _fit(trainer, module, datamodule, resume_from, out_dir)
    stopped_early = stopped_before_cap(trainer)  # now: testing restores the callbacks' states
    tested = _test_best(trainer, module, datamodule, best, settings.primary, out_dir)
    metrics = tested.metrics
    benchmarks = None
    if kind.after_test is not None and is_global_zero():  # e.g. generation, the tested weights
        benchmarks = kind.after_test(settings, module.model, backbone, method.name, out_dir)
        metrics |= {f"test/{name}": value for name, value in benchmarks.scores.items()}
    counts = module.parameter_counts
    result = FitResult(
        metrics=metrics,
        test_checkpoint="best validation" if tested.checkpoint else "final",
        optimizer_steps=trainer.global_step,
        stopped_early=stopped_early,
        best_step=tested.best_step,
        adapter_params=counts.adapter,
        trainable_params=counts.trainable,
        total_params=counts.total,
        distributed=module.plan_agreement,
        method_summary=method.summary(module.model),
        adapter_dir=_export_adapter(module, backbone, out_dir),
        environment=_environment(module),
        plan=module.rank_plan,
        fit_s=fit_s,
        test_s=tested.seconds,
        benchmark_s=benchmarks.seconds if benchmarks else None,
        benchmark_files=benchmarks.files if benchmarks else None,
        benchmark_unscored=benchmarks.unscored if benchmarks else None,
        cost=run_cost(next(c for c in callbacks if isinstance(c, ProgressLines))),
    )
    _log_scores(result, settings.primary, tested.test_metrics)
    return result


def run_cost(progress: ProgressLines) -> dict[str, Any]:
    """Peak resident memory of this process (``resource.getrusage``: kilobytes on Linux, bytes on
    macOS; None where the module does not exist), torch's peak CUDA allocation, and the training
    throughput ``progress`` counted."""
    import sys

    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_mb = round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)
    except ImportError:  # Windows
        peak_mb = None
    cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return {
        "peak_rss_mb": peak_mb,
        "cuda_peak_allocated_mb": None if cuda is None else round(cuda, 1),
        **progress.pace(),
    }


def _fit(trainer: L.Trainer, module, datamodule, resume_from: Path | None, out_dir: Path) -> float:
    """``trainer.fit`` (from ``resume_from``, if any); its seconds. On SIGTERM, ``last.ckpt``
    keeps every step done so far, then the signal's exception goes on."""
    started = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    except SIGTERMException:
        # Lightning stops at a step boundary on SIGTERM: keep every step done so far.
        trainer.save_checkpoint(out_dir / "checkpoints" / "last.ckpt", weights_only=False)
        log.warning(
            "stopped by SIGTERM at step %d; resume with the same run directory (hydra.run.dir=%s)",
            trainer.global_step,
            out_dir,
        )
        raise
    return round(time.perf_counter() - started, 3)


@dataclass(frozen=True)
class _Tested:
    """What testing the best checkpoint gave (``_test_best``)."""

    metrics: dict[str, float]  # fit's and test's, all finite
    test_metrics: dict[str, float]
    checkpoint: str | None  # the tested best.ckpt (``None``: the final weights)
    best_step: int | None
    seconds: float


def _test_best(
    trainer: L.Trainer,
    module,
    datamodule,
    best: RunFolderCheckpoint,
    primary: str,
    out_dir: Path,
) -> _Tested:
    """Test this folder's best checkpoint (the final weights without one).

    The tested checkpoint is this folder's best.ckpt (a fresh run in a used folder moved older
    ones aside, ``gelora.run_folder``), and its validation score is the one saved inside it.
    Neither is taken from the callback's state: a resume restores the state saved with
    last.ckpt, which may predate the last best.ckpt (a run killed between the two), and the
    module's running best (val_best) starts afresh on resume.

    Raises:
        FloatingPointError: a metric is not finite.
    """
    fit_metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    best_file = out_dir / "checkpoints" / f"{best.filename}{best.FILE_EXTENSION}"
    ckpt = str(best_file) if best_file.is_file() else None
    best_step, best_score = saved_best(best_file, best.state_key) if ckpt else (None, None)
    if best_score is not None:
        fit_metrics[f"val/{primary}_best"] = best_score
    started = time.perf_counter()
    per_loader = trainer.test(
        module, datamodule=datamodule, ckpt_path=ckpt, verbose=False, weights_only=True
    )
    test_s = round(time.perf_counter() - started, 3)
    test_metrics = {k: float(v) for loader in per_loader for k, v in loader.items()}
    metrics = {**fit_metrics, **test_metrics}
    if not all(math.isfinite(v) for v in metrics.values()):
        raise FloatingPointError(f"non-finite metrics: {metrics}")
    return _Tested(metrics, test_metrics, ckpt, best_step, test_s)


def _export_adapter(module, backbone: Backbone, out_dir: Path) -> str | None:
    """The trained adapter in peft's format, by global rank 0 (``head_only`` has none)."""
    if not (is_global_zero() and module.rank_plan.adapters):
        return None
    return str(
        save_adapter(
            module.model,
            module.rank_plan,
            out_dir / "adapter",
            head_modules=list(backbone.adapt_settings.head_modules),
            base_model_name_or_path=backbone.spec.portable_name if backbone.spec else None,
            task_type=backbone.adapt_settings.peft_task_type,
        )
    )


def _environment(module) -> dict[str, str]:
    """Versions and device the run trained with, and the code that made it."""
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(next(module.parameters()).device),
        **code_provenance(),
    }


def _log_scores(result: FitResult, primary: str, test_metrics: dict[str, float]) -> None:
    test_key, best_key = f"test/{primary}", f"val/{primary}_best"
    others = "".join(
        f"; {key} = {value:.4f}"
        for key, value in sorted(test_metrics.items())
        if key.startswith("test") and key != test_key
    )
    log.info(
        "%s = %.4f (%s checkpoint); %s = %.4f%s",
        test_key,
        result.metrics[test_key],
        result.test_checkpoint,
        best_key,
        result.metrics.get(best_key, float("nan")),
        others,
    )
