"""Structured configs: the type of every key of ``conf/train.yaml``'s typed nodes.

Each dataclass is registered in Hydra's ConfigStore as ``gelora_schema/<node>`` and placed under
its node by ``conf/train.yaml``'s defaults list (``- gelora_schema/trainer@trainer``), before the
group's yaml is merged into it. So a value of the wrong type (``trainer.max_epochs=two``,
``task.group_by_length=maybe``) or a key no schema knows (a typo) fails at compose time, naming
the key, before anything is imported or loaded. Ranges (``optimizer.warmup_ratio`` in [0, 1)) are
checked in one place, ``gelora.config.checks``, when the run starts.

Nodes that name a class (``task.loader``, ``estimator.id``, ``rank_policy``, ``logger``) are
``Any``: their classes check their own arguments. A value that may have more than one type
(``estimator.n_samples``: a number or ``all``; Lightning's ``val_check_interval``: batches or a
share of an epoch) is ``Any`` here and checked in ``checks``. This module imports nothing heavy:
``gelora-train --help`` and tab completion compose through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

# OmegaConf reads these annotations at run time: ``Optional[int]``, not ``int | None``, keeps
# them readable on Python 3.10 too.
# ruff: noqa: UP045


@dataclass
class ModelSchema:
    name: str = MISSING
    asset: Optional[str] = None
    pretrained: Optional[str] = None
    trust_remote_code: bool = False
    block_class: Optional[str] = None
    blocks: str = MISSING
    target_modules: list[str] = MISSING
    shared_inputs: list[list[str]] = field(default_factory=list)
    head_modules: list[str] = field(default_factory=list)
    # Trained in full on extractive QA tasks: the span head, ``qa_outputs`` in every
    # ``*ForQuestionAnswering`` model of transformers (no pooler: the head reads every token).
    qa_head_modules: list[str] = field(default_factory=lambda: ["qa_outputs"])
    gguf_file: Optional[str] = None
    random_init: Optional[dict[str, Any]] = None


@dataclass
class TaskSchema:
    name: str = MISSING
    loader: Any = MISSING
    split_seed: int = 0
    metrics: list[str] = MISSING
    max_length: int = 128
    batch_size: int = 32
    eval_batch_size: int = 128
    group_by_length: bool = True
    cache_tokens: bool = True  # tokenised splits shared across jobs ($GELORA_CACHE/tokenized)
    max_train_samples: Optional[int] = None
    max_eval_samples: Optional[int] = None
    # test rows: by default the validation cap; a number, or null for the whole test split
    max_test_samples: Optional[int] = "${.max_eval_samples}"  # type: ignore[assignment]
    data_dir: Optional[str] = None  # GLUE: a local copy instead of the hub
    # task=from_files only: the user's files and columns
    train_file: Optional[str] = None
    validation_file: Optional[str] = None
    test_file: Optional[str] = None
    text_fields: Optional[list[str]] = None
    label_field: Optional[str] = None
    problem: Optional[str] = None
    label_names: Optional[list[str]] = None
    # extractive QA (task=squad) only: windows over the context and the answer-span search
    doc_stride: Optional[int] = None
    max_question_length: Optional[int] = None
    n_best: Optional[int] = None
    max_answer_length: Optional[int] = None
    # instruction tuning (task=alpaca_demo) only: IFBench after the test (null prompts: all 294;
    # 0: none), MT-Bench answers (null: all 80; 0: none), greedy generation of at most
    # max_new_tokens, generation_batch_size conversations a batch
    ifbench_prompts: Optional[int] = None
    mt_bench_questions: Optional[int] = None
    max_new_tokens: Optional[int] = None
    generation_batch_size: Optional[int] = None
    # The task's default learning rates (optimizer.lr and optimizer.head_lr read them unless set):
    # a span head learnt from scratch in a few hundred steps (squad) wants more than a classifier.
    lr: float = 1.0e-3
    head_lr: Optional[float] = None


@dataclass
class EstimatorSchema:
    # Types only: the values are conf/train.yaml's `estimator:` block (one place, documented
    # there); the estimator group's files set `id`.
    n_samples: Any = MISSING
    pooling: str = MISSING
    tokens_per_text: int = MISSING
    dedup: str = MISSING
    dedup_threshold: float = MISSING
    batch_size: int = MISSING
    n_resamples: int = MISSING
    resampling: str = MISSING
    resample_fraction: float = MISSING
    sample_seed: int = MISSING
    cache: bool = MISSING
    id: Any = MISSING


@dataclass
class OptimizerSchema:
    lr: float = 1.0e-3
    head_lr: Optional[float] = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06


@dataclass
class LrSourcesSchema:
    """Where ``optimizer.lr`` comes from: the first of these that is set, in this order
    (``gelora.config.lr_choice.LR_SOURCES``); ``optimizer.lr=X`` on the command line wins."""

    fixed: Optional[float] = None
    chosen_on_validation: Optional[float] = None
    published: Optional[float] = None
    task_default: Optional[float] = None


@dataclass
class LoraSchema:
    dropout: float = 0.0
    scaling: str = "constant"
    scale: float = 2.0


@dataclass
class BudgetSchema:
    rank: Optional[int] = None
    params: Optional[int] = None


@dataclass
class TrainerSchema:
    """Every argument of ``lightning.pytorch.Trainer`` but ``logger``, ``callbacks`` and
    ``default_root_dir`` (the run sets them). ``null`` leaves Lightning's own default: null
    values are not passed on. A test keeps this list equal to Lightning's signature."""

    _target_: str = "lightning.pytorch.Trainer"
    accelerator: Optional[str] = None
    strategy: Any = None
    devices: Any = None
    num_nodes: Optional[int] = None
    precision: Any = None
    fast_dev_run: Any = None
    max_epochs: Optional[int] = None
    min_epochs: Optional[int] = None
    max_steps: Optional[int] = None
    min_steps: Optional[int] = None
    max_time: Any = None
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    limit_predict_batches: Any = None
    overfit_batches: Any = None
    val_check_interval: Any = None
    check_val_every_n_epoch: Optional[int] = None
    num_sanity_val_steps: Optional[int] = None
    log_every_n_steps: Optional[int] = None
    enable_checkpointing: Optional[bool] = None
    enable_progress_bar: Optional[bool] = None
    enable_model_summary: Optional[bool] = None
    accumulate_grad_batches: Optional[int] = None
    gradient_clip_val: Optional[float] = None
    gradient_clip_algorithm: Optional[str] = None
    deterministic: Any = None
    benchmark: Optional[bool] = None
    inference_mode: Optional[bool] = None
    use_distributed_sampler: Optional[bool] = None
    profiler: Any = None
    detect_anomaly: Optional[bool] = None
    barebones: Optional[bool] = None
    plugins: Any = None
    sync_batchnorm: Optional[bool] = None
    reload_dataloaders_every_n_epochs: Optional[int] = None
    enable_autolog_hparams: Optional[bool] = None
    model_registry: Optional[str] = None


SCHEMAS: dict[str, type] = {
    "model": ModelSchema,
    "task": TaskSchema,
    "estimator": EstimatorSchema,
    "optimizer": OptimizerSchema,
    "lr_sources": LrSourcesSchema,
    "lora": LoraSchema,
    "budget": BudgetSchema,
    "trainer": TrainerSchema,
}


def register_schemas() -> None:
    """Put every schema into Hydra's ConfigStore (``gelora_schema/<node>``); idempotent."""
    store = ConfigStore.instance()
    for node, schema in SCHEMAS.items():
        store.store(group="gelora_schema", name=node, node=schema)


register_schemas()
