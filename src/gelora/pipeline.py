"""One run, step by step: config -> model and data -> hidden states -> IDs -> rank plan ->
injected model -> training -> results. Each step is one function; ``run`` wires them.
"""

from __future__ import annotations

import json
import math
import platform
import random
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gelora.data.datamodule import TextClassificationDataModule
from gelora.data.task_data import TaskData, stratified_subsample
from gelora.geometry.hidden_states import collect_hidden_states
from gelora.geometry.id_profile import IDProfile, estimate_id_profile
from gelora.lora.export import save_adapter
from gelora.lora.inject import count_lora_parameters, count_parameters, inject_lora, mark_trainable
from gelora.models import (
    find_target_modules,
    load_classifier,
    resolve_source,
    targets_without_weights,
)
from gelora.ranks.budget import Budget, budget_from_config
from gelora.ranks.plan import RankPlan, TargetModule
from gelora.ranks.policies import RankPolicy
from gelora.ranks.sensitivity import rank_sensitivity
from gelora.reporting.console import format_id_profile, format_parameter_budget, format_rank_plan
from gelora.reporting.plots import plot_id_profile, plot_rank_plan
from gelora.reporting.results import redact_secrets, write_json_atomic
from gelora.training.adalora import AdaLoRAAllocation, effective_adapter_params, effective_ranks
from gelora.training.metrics import check_metrics
from gelora.training.module import LoRAClassifierModule
from gelora.validation import (
    ConfigError,
    check_budget_fits,
    check_sample_size,
    clean_task,
    validate_config,
)

T = TypeVar("T")
# Hugging Face's config.problem_type: which loss the model's forward computes from its labels.
_PROBLEM_TYPES = {"classification": "single_label_classification", "regression": "regression"}


@dataclass
class Timer:
    """Wall-clock seconds of named phases."""

    started: float = field(default_factory=time.perf_counter)
    phases: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, since: float) -> None:
        self.phases[name] = round(self.phases.get(name, 0.0) + time.perf_counter() - since, 3)

    def as_dict(self) -> dict[str, float]:
        return {**self.phases, "total_s": round(time.perf_counter() - self.started, 3)}


def _instantiate(node: DictConfig, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with the underlying error surfaced as a ``ConfigError``."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__ or error
        raise ConfigError(f"{key}: {cause}") from error


def is_global_zero() -> bool:
    """Whether this process is global rank 0 (Lightning reads the rank from the launcher's
    environment: ``RANK``, ``LOCAL_RANK``, ``SLURM_PROCID``); only it writes run files."""
    return rank_zero_only.rank == 0


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def load_budget(cfg: DictConfig) -> Budget | None:
    budget_cfg = cfg.get("budget") or {}
    try:
        return budget_from_config(budget_cfg.get("rank"), budget_cfg.get("params"))
    except ValueError as error:
        raise ConfigError(str(error)) from error


def plan_ranks(
    policy: RankPolicy,
    targets: list[TargetModule],
    profile: IDProfile,
    budget: Budget | None,
) -> RankPlan:
    try:
        return policy.plan(targets, profile.dimensions, budget)
    except ValueError as error:
        raise ConfigError(f"rank_policy={policy.name}: {error}") from error


def resume_checkpoint(cfg: DictConfig, out_dir: Path) -> Path | None:
    """``<run dir>/checkpoints/last.ckpt`` when ``resume`` is on and a run left one, else None."""
    path = out_dir / "checkpoints" / "last.ckpt"
    return path if cfg.get("resume", True) and path.is_file() else None


def saved_rank_plan(checkpoint: Path) -> tuple[RankPlan, int]:
    """The rank plan a checkpoint was trained with, and its optimizer step (tensors and plain
    data only: ``weights_only=True`` refuses pickled objects)."""
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if "rank_plan" not in saved:
        raise ConfigError(f"{checkpoint} holds no rank plan: not a gelora checkpoint")
    return RankPlan.from_dict(saved["rank_plan"]), int(saved.get("global_step", 0))


def adapt_model(
    model, policy: RankPolicy, plan: RankPlan, cfg: DictConfig, *, initialize: bool = True
):
    """The model with the plan's adapters: ours injected in place, or peft's wrapper (AdaLoRA).

    ``initialize=False`` (a resumed run) skips a policy's own initial weights (EVA's), since the
    checkpoint's weights replace them.
    """
    head_modules = list(cfg.model.head_modules)
    if getattr(policy, "wraps_model", False):
        return policy.wrap(model, plan, head_modules)
    inject_lora(
        model,
        plan,
        dropout=cfg.lora.dropout,
        shared_inputs=[list(group) for group in cfg.model.get("shared_inputs") or []],
    )
    mark_trainable(model, head_modules)
    if initialize and hasattr(policy, "initialize"):
        policy.initialize(model)  # e.g. EVA's components as the initial A
    adapter_params = count_lora_parameters(model)
    if adapter_params != plan.trainable_adapter_params:
        raise RuntimeError(
            f"injected {adapter_params} LoRA parameters, plan says {plan.trainable_adapter_params}"
        )
    return model


def primary_metric(cfg: DictConfig) -> str:
    """The task's first metric: the checkpoint monitor and the score printed at the end."""
    return cfg.task.metrics[0]


def load_task(task_cfg: DictConfig, seed: int) -> TaskData:
    """The task's splits, shrunk for smoke runs by ``max_train_samples``/``max_eval_samples``.

    Raises:
        ConfigError: the loader failed, or a metric of ``task.metrics`` does not fit the task.
    """
    task: TaskData = _instantiate(task_cfg.loader, "task.loader")
    try:
        check_metrics(list(task_cfg.metrics), task.problem, task.num_labels)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    eval_cap = task_cfg.max_eval_samples
    return TaskData(
        name=task.name,
        train=stratified_subsample(task.train, task_cfg.max_train_samples, seed=seed),
        validation=stratified_subsample(task.validation, eval_cap, seed=seed),
        test=stratified_subsample(task.test, eval_cap, seed=seed),
        label_names=task.label_names,
        notes=task.notes,
        problem=task.problem,
        extra_tests={
            name: stratified_subsample(split, eval_cap, seed=seed)
            for name, split in task.extra_tests.items()
        },
    )


def sample_texts(texts: list[T], n_samples: int, seed: int) -> list[T]:
    """``n_samples`` distinct inputs (texts, or (text, pair) tuples) drawn with ``seed``.

    All of them if fewer. Repeated inputs are kept once: identical hidden states say nothing
    about the geometry.
    """
    texts = list(dict.fromkeys(texts))
    if n_samples >= len(texts):
        return list(texts)
    return [texts[i] for i in sorted(random.Random(seed).sample(range(len(texts)), n_samples))]


def estimate_profile(model, tokenizer, task: TaskData, cfg: DictConfig) -> IDProfile:
    """Hidden states of a training sample through the frozen pretrained model, then their IDs."""
    n_samples, _ = check_sample_size(cfg.estimator.n_samples, task)
    inputs = sample_texts(task.train.inputs(), n_samples, cfg.seed)
    if task.is_pair_task:
        texts, pairs = [a for a, _ in inputs], [b for _, b in inputs]
    else:
        texts, pairs = inputs, None
    device = (
        "cuda"
        if torch.cuda.is_available() and cfg.trainer.accelerator in ("auto", "gpu", "cuda")
        else "cpu"
    )
    model.to(device)
    hidden = collect_hidden_states(
        model,
        tokenizer,
        texts,
        pooling=cfg.estimator.pooling,
        batch_size=cfg.estimator.batch_size,
        max_length=cfg.task.max_length,
        seed=cfg.seed,
        text_pairs=pairs,
    )
    model.to("cpu")
    estimator = _instantiate(cfg.estimator.id, "estimator.id")
    return estimate_id_profile(
        hidden,
        estimator,
        n_resamples=cfg.estimator.n_resamples,
        resampling=cfg.estimator.resampling,
        resample_fraction=cfg.estimator.resample_fraction,
        seed=cfg.seed,
    )


def build_loggers(cfg: DictConfig) -> list:
    return [
        _instantiate(node, f"logger.{name}") for name, node in (cfg.get("logger") or {}).items()
    ]


def log_plan(
    loggers: list,
    profile: IDProfile,
    plan: RankPlan,
    n_blocks: int,
    cfg: DictConfig,
    parameter_counts: dict[str, int],
    out_dir: Path,
) -> None:
    if not loggers:
        return
    scalars = {f"id/layer_{i:02d}": d for i, d in enumerate(profile.dimensions)}
    scalars |= {f"rank/layer_{i:02d}": r for i, r in enumerate(plan.block_ranks(n_blocks))}
    scalars["rank/total"] = plan.total_rank
    scalars |= {f"params/{name}": count for name, count in parameter_counts.items()}
    for logger in loggers:
        logger.log_hyperparams(redact_secrets(OmegaConf.to_container(cfg, resolve=True)))
        logger.log_metrics(scalars, step=0)
        if isinstance(logger, WandbLogger):  # a dashboard shows the plan without any code
            logger.log_table(
                key="rank_plan",
                columns=["module", "block", "rank", "alpha", "params"],
                data=[[a.module_name, a.block, a.rank, a.alpha, a.n_params] for a in plan.adapters],
            )
            figures = [out_dir / "id_profile.png", out_dir / "rank_plan.png"]
            logger.log_image(key="plots", images=[str(f) for f in figures if f.exists()])


def _finish_wandb() -> None:
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        wandb.finish()


def completed_record(cfg: DictConfig) -> dict[str, Any] | None:
    """The run directory's ``results.json`` if it records a completed run, else ``None``."""
    path = Path(cfg.paths.output_dir) / "results.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("status") == "completed" else None


def _config_record(cfg: DictConfig) -> Any:
    """The resolved config, or the unresolved one when a required value is missing (the run then
    stops in ``validate_config`` with an error naming the key)."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException:
        return OmegaConf.to_container(cfg, resolve=False)


def run(cfg: DictConfig, variant: str | None = None) -> dict[str, Any]:
    """Run one fine-tune and return its results; ``results.json`` records success or failure.

    ``variant`` names the table row this run belongs to (the ``method`` config, e.g.
    ``gelora_budget``); by default, the rank policy's name.
    """
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timer = Timer()
    record: dict[str, Any] = {
        "status": "running",
        "model": cfg.model.name,
        "task": cfg.task.name,
        "seed": cfg.seed,
        "variant": variant,
        "config": redact_secrets(_config_record(cfg)),
    }
    try:
        _run(cfg, out_dir, timer, record)
        record["status"] = "completed"
    except BaseException as error:
        stopped = isinstance(error, (KeyboardInterrupt, SIGTERMException))
        record["status"] = "interrupted" if stopped else "failed"
        record["error"] = f"{type(error).__name__}: {error}"
        record["traceback"] = traceback.format_exc()
        raise
    finally:
        record["timings"] = timer.as_dict()
        if is_global_zero():  # one results.json per run, however many processes train it
            write_json_atomic(out_dir / "results.json", record)
        _finish_wandb()
    return record


def _run(cfg: DictConfig, out_dir: Path, timer: Timer, record: dict[str, Any]) -> None:
    validate_config(cfg)
    policy: RankPolicy = _instantiate(cfg.rank_policy, "rank_policy")
    budget = load_budget(cfg)
    record["method"] = policy.name
    record["variant"] = record.get("variant") or policy.name
    record["budget"] = OmegaConf.to_container(cfg.budget) if "budget" in cfg else None
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    task = clean_task(load_task(cfg.task, cfg.seed))
    record["task_sizes"] = task.sizes()
    record["task_notes"] = list(task.notes)
    print(f"[gelora] task {task.name}: {task.sizes()}; " + "; ".join(task.notes))
    n_id_samples, sample_note = check_sample_size(cfg.estimator.n_samples, task)
    record["id_sample"] = {
        "requested": cfg.estimator.n_samples,
        "used": n_id_samples,
        "note": sample_note,
    }
    if sample_note:
        print(f"[gelora] {sample_note}")
    try:  # shapes from the model's config on the meta device: no weights loaded yet
        early_targets = targets_without_weights(
            asset=cfg.model.asset,
            pretrained=cfg.model.pretrained,
            num_labels=task.num_labels,
            trust_remote_code=cfg.model.trust_remote_code,
            random_init=_container(cfg.model.get("random_init")),
            gguf_file=cfg.model.get("gguf_file"),
            blocks=cfg.model.blocks,
            target_modules=list(cfg.model.target_modules),
        )
    except ValueError as error:
        raise ConfigError(f"model: {error}") from error
    check_budget_fits(budget, early_targets)
    model, tokenizer = load_classifier(
        asset=cfg.model.asset,
        pretrained=cfg.model.pretrained,
        num_labels=task.num_labels,
        problem_type=_PROBLEM_TYPES[task.problem],
        trust_remote_code=cfg.model.trust_remote_code,
        gguf_file=cfg.model.get("gguf_file"),
        random_init=_container(cfg.model.get("random_init")),
    )
    try:
        targets = find_target_modules(model, cfg.model.blocks, cfg.model.target_modules)
    except ValueError as error:
        raise ConfigError(f"model: {error}") from error
    n_blocks = len(model.get_submodule(cfg.model.blocks))
    if budget is not None:
        record["budget_params"] = budget.n_params(targets)
    datamodule = TextClassificationDataModule(
        task,
        tokenizer,
        max_length=cfg.task.max_length,
        batch_size=cfg.task.batch_size,
        eval_batch_size=cfg.task.eval_batch_size,
        seed=cfg.seed,
        group_by_length=cfg.task.group_by_length,
    )

    since = time.perf_counter()
    profile = estimate_profile(model, tokenizer, task, cfg)
    timer.add("id_estimation_s", since)
    record["intrinsic_dims"] = profile.dimensions
    record["id_profile"] = profile.to_dict()
    record["pooling"] = cfg.estimator.pooling
    print(format_id_profile(profile))

    resume_from = resume_checkpoint(cfg, out_dir)
    if resume_from is not None:  # the plan comes with the checkpoint: never recomputed
        plan, step = saved_rank_plan(resume_from)
        record["resumed_from"] = {"checkpoint": str(resume_from), "optimizer_step": step}
        print(f"[gelora] resuming from {resume_from} (step {step}) with its saved rank plan")
    else:
        if getattr(policy, "needs_activations", False):  # EVA: an SVD of each target's inputs
            since = time.perf_counter()
            datamodule.setup("fit")
            policy.fit_activations(model, datamodule.train_dataloader(), targets, budget)
            timer.add("activation_svd_s", since)
        plan = plan_ranks(policy, targets, profile, budget)
    sensitivity = rank_sensitivity(policy, targets, profile, plan, n_blocks, budget)
    record["rank_sensitivity"] = sensitivity.to_dict() if sensitivity else None
    print(format_rank_plan(plan, n_blocks, sensitivity))
    for note in plan.notes:
        print(f"[gelora] {note}")
    record |= {
        "ranks": plan.ranks,
        "alphas": plan.alphas,
        "block_ranks": plan.block_ranks(n_blocks),
        "rank_plan_notes": list(plan.notes),
        "planned_adapter_params": plan.trainable_adapter_params,
        "metric": primary_metric(cfg),
        "metric_names": list(cfg.task.metrics),
    }
    if is_global_zero():
        write_json_atomic(out_dir / "rank_plan.json", plan.to_dict())
        plot_id_profile(
            profile,
            out_dir / "id_profile.png",
            title=f"ID profile: {cfg.model.name} on {task.name} ({cfg.estimator.pooling} pooling)",
        )
        plot_rank_plan(plan, n_blocks, out_dir / "rank_plan.png")
    loggers = build_loggers(cfg)
    counts: dict[str, int] = {}

    def adapt(base, agreed_plan: RankPlan):
        """Runs in ``configure_model``, with rank 0's plan (see ``LoRAClassifierModule``)."""
        adapted = adapt_model(base, policy, agreed_plan, cfg, initialize=resume_from is None)
        counts["adapter"] = count_lora_parameters(adapted)
        counts["trainable"] = count_parameters(adapted, trainable_only=True)
        counts["total"] = count_parameters(adapted)
        if is_global_zero():
            print(format_parameter_budget(counts["adapter"], counts["trainable"], counts["total"]))
        log_plan(loggers, profile, agreed_plan, n_blocks, cfg, dict(counts), out_dir)
        return adapted

    module = LoRAClassifierModule(
        model,
        rank_plan=plan,
        num_labels=task.num_labels,
        metrics=list(cfg.task.metrics),
        problem=task.problem,
        test_splits=datamodule.test_split_names,
        lr=cfg.optimizer.lr,
        head_lr=cfg.optimizer.head_lr,
        weight_decay=cfg.optimizer.weight_decay,
        warmup_ratio=cfg.optimizer.warmup_ratio,
        adapt=adapt,
    )
    checkpoint = ModelCheckpoint(
        dirpath=out_dir / "checkpoints",
        filename="best",
        monitor=f"val/{primary_metric(cfg)}",
        mode="max",
        save_top_k=1,
    )
    periodic = ModelCheckpoint(  # last.ckpt every few steps: what a killed run resumes from
        dirpath=out_dir / "checkpoints",
        save_top_k=0,
        save_last=True,
        every_n_train_steps=cfg.get("checkpoint_every_n_steps", 50),
    )
    callbacks: list[L.Callback] = [checkpoint, periodic]
    callbacks += [  # e.g. EarlyStopping, or fault injection in the tests
        _instantiate(node, f"extra_callbacks.{name}")
        for name, node in (cfg.get("extra_callbacks") or {}).items()
    ]
    allocation = AdaLoRAAllocation(policy) if policy.name == "adalora" else None
    if allocation is not None:
        callbacks.append(allocation)
    trainer: L.Trainer = _instantiate(
        cfg.trainer,
        "trainer",
        logger=loggers or False,
        callbacks=callbacks,
        default_root_dir=str(out_dir),
    )
    since = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    except SIGTERMException:
        # Lightning stops at a step boundary on SIGTERM: keep every step done so far.
        trainer.save_checkpoint(out_dir / "checkpoints" / "last.ckpt", weights_only=False)
        print(
            f"[gelora] stopped by SIGTERM at step {trainer.global_step}; resume with the same "
            f"run directory (hydra.run.dir={out_dir})"
        )
        raise
    except ValueError as error:
        if allocation is not None and "AdaLoRA" in str(error):
            raise ConfigError(str(error)) from error
        raise
    timer.add("fit_s", since)
    fit_metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    since = time.perf_counter()
    ckpt = "best" if checkpoint.best_model_path else None
    per_loader = trainer.test(
        module, datamodule=datamodule, ckpt_path=ckpt, verbose=False, weights_only=True
    )
    timer.add("test_s", since)
    test_metrics = {k: float(v) for loader in per_loader for k, v in loader.items()}
    metrics = {**fit_metrics, **test_metrics}
    if not all(math.isfinite(v) for v in metrics.values()):
        raise FloatingPointError(f"non-finite metrics: {metrics}")
    record["metrics"] = metrics
    record["test_checkpoint"] = "best validation" if ckpt else "final"
    record["optimizer_steps"] = trainer.global_step
    record |= {
        "trainable_adapter_params": counts["adapter"],
        "trainable_params": counts["trainable"],
        "total_params": counts["total"],
        "distributed": module.plan_agreement,
    }
    model = module.model
    if allocation is not None:
        record["adalora"] = {
            "schedule": allocation.schedule,
            "initial_adapter_params": counts["adapter"],
            "final_adapter_params": effective_adapter_params(model),
            "final_ranks": effective_ranks(model),
            "rank_budget_history": allocation.budget_history,
        }
        print(
            f"[gelora] AdaLoRA adapter parameters: {counts['adapter']:,} at the start, "
            f"{record['adalora']['final_adapter_params']:,} left unpruned at the end"
        )
    if is_global_zero():
        adapter_dir = save_adapter(
            model,
            module.rank_plan,
            out_dir / "adapter",
            head_modules=list(cfg.model.head_modules),
            base_model_name_or_path=resolve_source(cfg.model.asset, cfg.model.pretrained),
        )
        record["adapter_dir"] = str(adapter_dir)
    record["environment"] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(next(module.parameters()).device),
    }
    primary = primary_metric(cfg)
    test_key, best_key = f"test/{primary}", f"val/{primary}_best"
    others = "".join(
        f"; {key} = {value:.4f}"
        for key, value in sorted(test_metrics.items())
        if key.startswith("test") and key != test_key
    )
    print(
        f"[gelora] {test_key} = {metrics[test_key]:.4f} ({record['test_checkpoint']} checkpoint); "
        f"{best_key} = {metrics.get(best_key, float('nan')):.4f}{others}"
    )
