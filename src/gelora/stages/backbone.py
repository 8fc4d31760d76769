"""Stage ``load_backbone``: the pretrained model with a new head, its tokenizer and its targets.

The head follows the task kind: a sequence classifier (or regressor) for classification and
regression, a span-extraction head (``AutoModelForQuestionAnswering``: start and end logits per
token) for extractive QA, trained in full with the modules ``model.qa_head_modules`` names, and
the decoder's own pretrained next-token head (``AutoModelForCausalLM``) for instruction tuning,
where only the adapters train.

The target shapes are read from the model's config on the meta device first (no weights), so a
wrong target name or a budget below one rank per matrix stops the run before the download or load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from gelora.data.task_data import TaskData
from gelora.errors import ConfigError
from gelora.kinds import kind_of
from gelora.methods.base import AdaptSettings
from gelora.models import ModelSpec, find_target_modules, load_classifier, targets_without_weights
from gelora.ranks.budget import Budget, check_budget_fits
from gelora.ranks.plan import TargetModule

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

PEFT_TASK_TYPES = {
    "sequence_classification": "SEQ_CLS",
    "question_answering": "QUESTION_ANS",
    "causal_lm": "CAUSAL_LM",
}


@dataclass(frozen=True)
class Backbone:
    """The loaded model and what the later stages need to know about it.

    Attributes:
        targets: every adaptable linear map, in block order, with its shape.
        n_blocks: transformer blocks (the ID profile has ``n_blocks + 1`` layers).
        adapt_settings: heads, LoRA dropout and shared-input groups, for ``Method.adapt``.
    """

    spec: ModelSpec | None  # None: a model handed in from Python (gelora.plan.lora_config_for)
    name: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    targets: tuple[TargetModule, ...]
    n_blocks: int
    adapt_settings: AdaptSettings


def model_spec(model_cfg: DictConfig, task: TaskData) -> ModelSpec:
    container = OmegaConf.to_container(model_cfg, resolve=True)
    kind = kind_of(task.problem)  # its head, and the loss the model's forward computes
    return ModelSpec.from_config(container, task.num_labels, kind.problem_type, head=kind.head)


def adapt_settings(model_cfg: DictConfig, head: str, lora_dropout: float = 0.0) -> AdaptSettings:
    """Which modules train in full (the head's; none for a causal LM, whose head is pretrained),
    LoRA dropout, shared inputs, peft's task type."""
    heads = {"question_answering": model_cfg.qa_head_modules, "causal_lm": []}.get(
        head, model_cfg.head_modules
    )
    return AdaptSettings(
        head_modules=tuple(heads),
        dropout=lora_dropout,
        shared_inputs=tuple(tuple(g) for g in model_cfg.get("shared_inputs") or []),
        peft_task_type=PEFT_TASK_TYPES[head],
    )


def load_backbone(
    model_cfg: DictConfig, task: TaskData, budget: Budget | None, lora_dropout: float = 0.0
) -> Backbone:
    """Check the targets and the budget on the meta device, then load the weights.

    Raises:
        ConfigError: an unknown blocks path or target module, or a budget below one rank per
            matrix.
        AssetError: the offline asset could not be fetched or built.
    """
    spec = model_spec(model_cfg, task)
    blocks, relative = model_cfg.blocks, list(model_cfg.target_modules)
    try:
        early_targets = targets_without_weights(spec, blocks, relative)
    except ValueError as error:
        raise ConfigError(f"model: {error}") from error
    check_budget_fits(budget, early_targets)
    model, tokenizer = load_classifier(
        spec, head_modules=adapt_settings(model_cfg, spec.head).head_modules
    )
    try:
        targets = find_target_modules(model, blocks, relative)
    except ValueError as error:
        raise ConfigError(f"model: {error}") from error
    return Backbone(
        spec=spec,
        name=model_cfg.name,
        model=model,
        tokenizer=tokenizer,
        targets=tuple(targets),
        n_blocks=len(model.get_submodule(blocks)),
        adapt_settings=adapt_settings(model_cfg, spec.head, lora_dropout),
    )
