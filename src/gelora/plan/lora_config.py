"""GeLoRA for every peft user: the rank plan as a ``peft.LoraConfig``, without our training loop.

- ``gelora-plan model=... task=... [budget.rank=...] [estimator=...]``: estimates the ID profile
  on the task's training inputs, prints the profile and the plan with its half-sample stability,
  draws ``id_profile.png`` and ``rank_plan.png``, and writes ``lora_config/adapter_config.json``,
  which ``LoraConfig.from_pretrained`` and ``get_peft_model`` accept as is.
- ``lora_config_for(model, tokenizer, texts, budget=...)``: the same from Python, for a model and
  texts of your own.

Both use the run's own stages (``estimate_profile``, ``make_plan``): the plan is the one
``gelora-train`` would train with the same settings.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from torch import nn

from gelora.data.task_data import Split, TaskData
from gelora.errors import ConfigError
from gelora.lora.patterns import check_on_model
from gelora.methods.base import AdaptSettings, Method
from gelora.plan.compare import (
    Comparison,
    compare_plans,
    format_comparison,
    write_comparison,
)
from gelora.plan.emit import Emit, PlanOptions
from gelora.plan.serving import format_serving_report, serving_report, write_serving_report
from gelora.ranks.budget import Budget
from gelora.ranks.plan import RankPlan
from gelora.stages.backbone import Backbone
from gelora.stages.plan import PlanResult, make_plan
from gelora.stages.profile import (
    EstimatorSettings,
    ProfileResult,
    estimate_profile,
    id_sample_size,
)
from gelora.stages.prologue import PrologueHooks, StageCache, plan_stages, write_plan_outputs

log = logging.getLogger(__name__)
LORA_CONFIG_DIR = "lora_config"


def lora_config_of(
    plan: RankPlan,
    *,
    head_modules: Sequence[str] = (),
    base_model: str | None = None,
    task_type: str | None = "SEQ_CLS",
    lora_dropout: float = 0.0,
):
    """The trainable ``peft.LoraConfig`` of ``plan``: every planned module by its full name,
    per-module ranks and alphas in ``rank_pattern``/``alpha_pattern`` (alpha follows the
    plan's scaling rule, so peft's ``lora_alpha / r`` is the plan's), and ``lora_dropout`` (the
    run's ``lora.dropout``)."""
    from gelora.lora.export import peft_lora_config

    config = peft_lora_config(
        plan,
        head_modules=head_modules,
        base_model_name_or_path=base_model,
        task_type=task_type,
        lora_dropout=lora_dropout,
    )
    config.inference_mode = False
    return config


def find_blocks(model: nn.Module) -> str:
    """The dotted path of the model's transformer blocks: its ``nn.ModuleList`` with one entry
    per hidden layer (``config.num_hidden_layers``)."""
    n_layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and (n_layers is None or len(module) == n_layers):
            return name
    raise ValueError("no nn.ModuleList of transformer blocks found: pass blocks='...'")


def block_linear_maps(model: nn.Module, blocks: str) -> list[str]:
    """Every linear map of the first block, by its name relative to the block."""
    first = model.get_submodule(blocks)[0]
    return [name for name, module in first.named_modules() if isinstance(module, nn.Linear)]


def _texts_as_task(texts: Sequence[str], text_pairs: Sequence[str] | None) -> TaskData:
    """The texts as a task's training split: the ID sample is drawn from it."""
    pairs = None if text_pairs is None else list(text_pairs)
    split = Split(list(texts), [0] * len(texts), text_pairs=pairs)
    return TaskData(name="texts", train=split, validation=split, test=split, label_names=["-"])


def lora_config_for(
    model: nn.Module,
    tokenizer,
    texts: Sequence[str],
    *,
    text_pairs: Sequence[str] | None = None,
    budget: int | Budget | None = None,
    policy: Any = None,
    estimator: Any = None,
    blocks: str | None = None,
    target_modules: Sequence[str] | None = None,
    head_modules: Sequence[str] = (),
    n_samples: int | str = 2000,
    max_length: int = 128,
    settings: EstimatorSettings | None = None,
    task_type: str | None = "SEQ_CLS",
    cache_dir: Path | None = None,
    lora_dropout: float = 0.0,
):
    """GeLoRA's ``peft.LoraConfig`` for ``model`` from the ID profile of ``texts``.

    Args:
        texts: inputs of your task (training texts); ``n_samples`` of them (all if fewer) pass
            through the frozen model.
        budget: ``None`` (the paper's rule: each block's rank from its ID gap), an equivalent
            uniform rank (``2``: what LoRA r=2 costs on the same maps), or a ``Budget``.
        policy: a rank policy of ``gelora.ranks`` (default: ``GeLoRAPolicy()``).
        estimator: an ID estimator (default: ``TwoNN()``).
        blocks: the model's block list (default: the one ``nn.ModuleList`` with a block per
            hidden layer).
        target_modules: the maps to adapt, relative to a block (default: every ``nn.Linear`` in
            it).
        head_modules: modules peft should train in full (``modules_to_save``), e.g. a new head.
        lora_dropout: peft's ``lora_dropout`` in the returned config.

    Returns:
        config (peft.LoraConfig): ``get_peft_model(model, config)`` carries exactly the plan.

    Raises:
        ConfigError: a ``rank_pattern`` / ``alpha_pattern`` key that would not match exactly one
            module peft adapts in ``model`` (``gelora.lora.patterns``).
    """
    from gelora.geometry.twonn import TwoNN
    from gelora.methods.ours import InjectedLoRA
    from gelora.models import find_target_modules
    from gelora.ranks.policies import GeLoRAPolicy

    blocks = blocks or find_blocks(model)
    relative = list(target_modules or block_linear_maps(model, blocks))
    targets = find_target_modules(model, blocks, relative)
    backbone = Backbone(
        spec=None,
        name=type(model).__name__,
        model=model,
        tokenizer=tokenizer,
        targets=tuple(targets),
        n_blocks=len(model.get_submodule(blocks)),
        adapt_settings=AdaptSettings(head_modules=tuple(head_modules)),
    )
    if isinstance(budget, int):
        budget = Budget(rank=budget)
    task = _texts_as_task(texts, text_pairs)
    profile = estimate_profile(
        backbone,
        task,
        settings or EstimatorSettings(),
        estimator or TwoNN(),
        id_sample_size(n_samples, task),
        max_length=max_length,
        cache_dir=cache_dir,
    )
    method = InjectedLoRA(policy or GeLoRAPolicy())
    result = make_plan(method, backbone, profile.profile, budget, train_batches=_no_batches)
    config = lora_config_of(
        result.plan, head_modules=head_modules, task_type=task_type, lora_dropout=lora_dropout
    )
    check_on_model(config, model)  # each pattern key matches one module peft adapts
    return config


def _no_batches():
    raise ConfigError("this method needs training batches: use gelora-train")


@dataclass(frozen=True)
class PlanRun:
    """What ``gelora-plan`` computed and where it wrote it."""

    profile: ProfileResult
    plan: PlanResult
    lora_config_dir: Path
    serving_report: dict
    emitted: tuple[Path, ...] = ()


class _PlanHooks(PrologueHooks):
    """``gelora-plan``'s part of the prologue: a method that is not a rank policy's plan in LoRA
    layers is refused before anything loads; an allocator that scores the model on training
    batches (``gelora.ranks.scoring``) gets them from the task's datamodule, as in training."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.loaded: tuple[TaskData, Backbone] | None = None

    def method_loaded(self, method: Method) -> None:
        from gelora.methods.ours import InjectedLoRA
        from gelora.ranks.controls import HeadOnlyPolicy

        if type(method) is not InjectedLoRA:
            raise ConfigError(
                f"method={method.name} is not a plan a LoraConfig holds on its own (AdaLoRA and "
                "EVA bring their own adapters or initial weights): use gelora-train"
            )
        if isinstance(method.policy, HeadOnlyPolicy):
            raise ConfigError(
                f"method={method.name} trains no adapters, so there is no LoRA config, serving "
                "report or emit to write: use gelora-train for a head-only run"
            )

    def backbone_loaded(self, task: TaskData, backbone: Backbone) -> None:
        self.loaded = (task, backbone)

    def train_batches(self):
        """The training loader ``gelora-train`` would build (tokenised here, on demand)."""
        from gelora.assets import cache_root
        from gelora.stages.fit import build_datamodule

        task, backbone = self.loaded
        tokens = cache_root() / "tokenized" if self.cfg.task.cache_tokens else None
        datamodule = build_datamodule(task, backbone, self.cfg.task, self.cfg.seed, tokens)
        datamodule.setup("fit")
        return datamodule.train_dataloader()


class PlanStages:
    """The stages of ``gelora-train`` up to the plan (``plan_stages``), for one config or
    several: the task, the backbone and the ID profile of a config are kept for the next config
    that shares them (the variants of ``gelora-plan --compare`` differ in a key or two)."""

    def __init__(self) -> None:
        self._cache = StageCache()

    def plan(self, cfg: DictConfig) -> tuple[ProfileResult, PlanResult, Backbone, TaskData]:
        """Check ``cfg``, then the profile and plan it asks for (no files written).

        Raises:
            ConfigError: a bad setting, or a method that is not a rank plan in LoRA layers
                (AdaLoRA and EVA bring their own adapters or initial weights: use gelora-train).
        """
        stages = plan_stages(cfg, hooks=_PlanHooks(cfg), cache=self._cache)
        return stages.profile, stages.plan, stages.backbone, stages.task


def plan_from_config(cfg: DictConfig, out_dir: Path, options: PlanOptions | None = None) -> PlanRun:
    """``gelora-plan``: the stages of ``gelora-train`` up to the plan, then the peft config, the
    serving report (``serving_report.json``; printed with ``--serving-report``) and the files
    of each ``--emit``.

    Raises:
        ConfigError: a bad setting, or a method that is not a rank plan in LoRA layers.
    """
    options = options or PlanOptions()
    profile, plan, backbone, task = PlanStages().plan(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_plan_outputs(plan.plan, profile, backbone, task.name, out_dir)
    config = lora_config_of(
        plan.plan,
        head_modules=backbone.adapt_settings.head_modules,
        base_model=backbone.spec.portable_name,
        task_type=backbone.adapt_settings.peft_task_type,
        lora_dropout=cfg.lora.dropout,
    )
    check_on_model(config, backbone.model)  # each pattern key matches one module peft adapts
    config_dir = out_dir / LORA_CONFIG_DIR
    config.save_pretrained(config_dir)
    log.info("LoRA config for peft: %s (LoraConfig.from_pretrained accepts it)", config_dir)
    report = serving_report(plan.plan, backbone.targets)
    saved = write_serving_report(report, out_dir)
    if options.serving_report:
        log.info("%s\nserving report saved: %s", format_serving_report(report), saved)
    emitted = tuple(_emit(each, cfg, plan.plan, backbone, config) for each in options.emits)
    return PlanRun(profile, plan, config_dir, report, emitted)


def _emit(emit: Emit, cfg: DictConfig, plan: RankPlan, backbone: Backbone, config) -> Path:
    """One ``--emit``'s files, said in the log."""
    from gelora.plan.emit import write_axolotl, write_peft_bench

    base = backbone.spec.portable_name
    hub_id = base if base and not base.startswith("gelora-asset:") else None
    if emit.kind == "axolotl":
        done = write_axolotl(config, emit.dest, model=base or f"{cfg.model.name}, random weights")
        log.info(done.text())
        return done.path
    budget = (cfg.budget.rank and f"rank{cfg.budget.rank}") or (
        cfg.budget.params and f"{cfg.budget.params}params") or "nobudget"  # fmt: skip
    folders = write_peft_bench(
        plan,
        backbone.targets,
        emit.dest,
        name=f"{cfg.model.name}-{cfg.task.name}-{plan.policy}-{budget}",
        seed=cfg.seed,
        model_id=hub_id,
        head_modules=backbone.adapt_settings.head_modules,
        task_type=backbone.adapt_settings.peft_task_type,
        lora_dropout=cfg.lora.dropout,
    )
    log.info("peft method_comparison experiments: %s", ", ".join(map(str, folders)))
    return folders[0].parent


def compare_from_config(cfg: DictConfig, comparisons: list[Comparison], out_dir: Path) -> list:
    """``gelora-plan --compare``: the plan once per combination of the compared values, printed
    side by side and saved as ``plan_comparison.json``."""
    stages = PlanStages()

    def plan_for(variant: DictConfig):
        profile, plan, backbone, _ = stages.plan(variant)
        return profile, plan, backbone.n_blocks

    variants = compare_plans(cfg, comparisons, plan_for)
    log.info(format_comparison(variants))
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("comparison saved: %s", write_comparison(variants, out_dir))
    return variants
