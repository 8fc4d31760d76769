"""Loading a pretrained classifier and finding the linear maps to adapt.

A model config names where its weights come from (an offline ``asset`` or a hub ``pretrained``
id), the dotted path of its ``nn.ModuleList`` of blocks, and its target modules by their names
relative to a block, so that ``output.dense`` cannot be confused with ``attention.output.dense``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from gelora.assets import asset_path
from gelora.ranks.plan import TargetModule


def resolve_source(asset: str | None, pretrained: str | None) -> str:
    """A local folder for an offline asset, else the hub id (or local path) as given."""
    if (asset is None) == (pretrained is None):
        raise ValueError("a model config needs exactly one of `asset` and `pretrained`")
    return str(asset_path(asset)) if asset is not None else str(pretrained)


def load_classifier(
    *,
    asset: str | None = None,
    pretrained: str | None = None,
    num_labels: int,
    problem_type: str | None = None,
    trust_remote_code: bool = False,
    gguf_file: str | None = None,
    random_init: Mapping[str, Any] | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A sequence classifier (new head) and its tokenizer; only the head is freshly initialised.

    Args:
        problem_type: Hugging Face's ``config.problem_type``, which picks the loss:
            ``single_label_classification`` (cross-entropy) or ``regression`` (MSE, with
            ``num_labels=1``). ``None`` lets the model infer it from the labels.
        gguf_file: a GGUF file inside the source folder (quantised weights are dequantised on
            load; needs the ``gguf`` package).
        random_init: build the source's architecture with these config changes (e.g. two
            layers of width 32) and random weights instead of loading them: tiny models for
            tests and for smoke runs of experiment configs; the tokenizer is the source's.
    """
    source = resolve_source(asset, pretrained)
    gguf = {"gguf_file": gguf_file} if gguf_file is not None else {}
    head = {"problem_type": problem_type} if problem_type is not None else {}
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code, **gguf)
    if random_init is not None:
        config = AutoConfig.from_pretrained(
            source, num_labels=num_labels, trust_remote_code=trust_remote_code, **head
        )
        for key, value in random_init.items():
            if not hasattr(config, key):
                raise ValueError(f"model.random_init: {type(config).__name__} has no {key!r}")
            setattr(config, key, value)
        model = AutoModelForSequenceClassification.from_config(config)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=num_labels, trust_remote_code=trust_remote_code, **gguf, **head
        )
    if tokenizer.pad_token is None:  # decoders (Llama, GPT-2) ship without one
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def targets_without_weights(
    *,
    asset: str | None,
    pretrained: str | None,
    num_labels: int,
    blocks: str,
    target_modules: Sequence[str],
    trust_remote_code: bool = False,
    random_init: Mapping[str, Any] | None = None,
    gguf_file: str | None = None,
) -> list[TargetModule]:
    """The target modules and their shapes from the model's config alone, built on the meta
    device (no weights read, no memory used), so config errors surface before any loading.

    Raises:
        ValueError: as ``find_target_modules`` (unknown blocks path or target module).
    """
    source = resolve_source(asset, pretrained)
    gguf = {"gguf_file": gguf_file} if gguf_file is not None else {}
    config = AutoConfig.from_pretrained(
        source, num_labels=num_labels, trust_remote_code=trust_remote_code, **gguf
    )
    for key, value in (random_init or {}).items():
        setattr(config, key, value)
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(
            config, trust_remote_code=trust_remote_code
        )
    return find_target_modules(model, blocks, target_modules)


def find_target_modules(
    model: nn.Module, blocks: str, target_modules: Sequence[str]
) -> list[TargetModule]:
    """Every target linear map of every block, in block order.

    Args:
        blocks: dotted path of the model's ``nn.ModuleList`` of transformer blocks.
        target_modules: module names relative to a block, e.g. ``attention.self.query``.

    Raises:
        ValueError: the blocks path is not a module list, or a target is missing or not linear.
    """
    try:
        block_list = model.get_submodule(blocks)
    except AttributeError as error:
        raise ValueError(f"model.blocks={blocks!r} names no module of this model") from error
    if not isinstance(block_list, nn.ModuleList):
        raise ValueError(
            f"model.blocks={blocks!r} is a {type(block_list).__name__}, not a ModuleList"
        )
    if not target_modules:
        raise ValueError("model.target_modules is empty")
    found = []
    for index, block in enumerate(block_list):
        for relative in target_modules:
            try:
                module = block.get_submodule(relative)
            except AttributeError as error:
                available = sorted(n for n, m in block.named_modules() if isinstance(m, nn.Linear))
                raise ValueError(
                    f"unknown target module {relative!r} in block {index}; "
                    f"linear modules there: {', '.join(available)}"
                ) from error
            base = getattr(module, "base_layer", module)
            if not isinstance(base, nn.Linear):
                raise ValueError(
                    f"target module {relative!r} is a {type(base).__name__}, not linear"
                )
            found.append(
                TargetModule(
                    name=f"{blocks}.{index}.{relative}",
                    block=index,
                    in_features=base.in_features,
                    out_features=base.out_features,
                )
            )
    return found
