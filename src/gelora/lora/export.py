"""Save a trained adapter in peft's format, so that it is usable without gelora.

``<dir>/adapter_config.json`` is a ``peft.LoraConfig`` naming every adapted module, with
per-module ranks and alphas in ``rank_pattern`` / ``alpha_pattern`` (each key matching exactly
one module by peft's rule: ``lora/patterns.py``, checked against the model before saving); the
weights go to ``<dir>/adapter_model.safetensors`` under peft's keys
(``base_model.model.<module>.lora_A.weight``, and the fully trained head modules as
``base_model.model.<module>.<param>``). Then
``PeftModel.from_pretrained(base_model, dir)`` rebuilds the same model (tested against our
logits). A model already wrapped by peft (a method that adapts through peft) is saved by peft
itself.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel
from safetensors.torch import save_file
from torch import nn

from gelora.atomic import atomic_dir
from gelora.lora.inject import lora_layers
from gelora.lora.patterns import check_on_model, check_pattern_keys, pattern_keys, resolve_pattern
from gelora.ranks.plan import RankPlan

PEFT_PREFIX = "base_model.model."


def peft_lora_config(
    plan: RankPlan,
    *,
    head_modules: Sequence[str] = (),
    base_model_name_or_path: str | None = None,
    task_type: str | None = "SEQ_CLS",
    lora_dropout: float = 0.0,
) -> LoraConfig:
    """The ``LoraConfig`` equivalent to ``plan``: the commonest rank and alpha as defaults, and
    the run's LoRA dropout (``lora.dropout``), so that training on in peft keeps it."""
    if not plan.adapters:
        raise ValueError("the rank plan has no adapters to export")
    rank = collections.Counter(a.rank for a in plan.adapters).most_common(1)[0][0]
    alpha = collections.Counter(a.alpha for a in plan.adapters).most_common(1)[0][0]
    names = [a.module_name for a in plan.adapters]
    key = pattern_keys(names)  # each matches its module alone, by peft's rule
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        target_modules=names,
        rank_pattern={key[a.module_name]: a.rank for a in plan.adapters if a.rank != rank},
        alpha_pattern={key[a.module_name]: a.alpha for a in plan.adapters if a.alpha != alpha},
        lora_dropout=lora_dropout,
        modules_to_save=list(head_modules) or None,
        base_model_name_or_path=base_model_name_or_path,
        task_type=task_type,
        inference_mode=True,
    )
    check_pattern_keys(config, names)
    return config


def peft_state_dict(model: nn.Module, head_modules: Sequence[str] = ()) -> dict[str, torch.Tensor]:
    """LoRA factors and head parameters under the keys peft saves them with."""
    state = {}
    for name, layer in lora_layers(model).items():
        state[f"{PEFT_PREFIX}{name}.lora_A.weight"] = layer.lora_A.weight
        state[f"{PEFT_PREFIX}{name}.lora_B.weight"] = layer.lora_B.weight
    for head in head_modules:
        for param_name, tensor in model.get_submodule(head).state_dict().items():
            state[f"{PEFT_PREFIX}{head}.{param_name}"] = tensor
    return {key: value.detach().cpu().contiguous() for key, value in state.items()}


def lora_dropout_of(model: nn.Module) -> float:
    """The dropout probability of the model's LoRA layers (0 without dropout or layers).

    Raises:
        ValueError: the layers differ, which one ``LoraConfig.lora_dropout`` cannot hold.
    """
    found = {
        float(layer.lora_dropout.p) if isinstance(layer.lora_dropout, nn.Dropout) else 0.0
        for layer in lora_layers(model).values()
    }
    if len(found) > 1:
        raise ValueError(f"LoRA layers with different dropouts {sorted(found)}: peft holds one")
    return found.pop() if found else 0.0


def save_adapter(
    model: nn.Module,
    plan: RankPlan,
    directory: str | Path,
    *,
    head_modules: Sequence[str] = (),
    base_model_name_or_path: str | None = None,
    task_type: str | None = "SEQ_CLS",
    lora_dropout: float | None = None,
) -> Path:
    """Write the adapter to ``directory`` in peft's format, atomically (a temp dir, then rename).

    ``task_type`` is peft's name for the model's head (``SEQ_CLS``, ``QUESTION_ANS``): peft's
    ``AutoPeftModelFor...`` classes and ``PeftModel.from_pretrained`` wrap the base model by it.
    ``lora_dropout`` (``None``: the dropout of the model's own LoRA layers, what it trained
    with) goes into the config. ``base_model_name_or_path`` is ``None`` for a model with random
    weights (``ModelSpec.portable_name``): no real model is its base.
    """
    directory = Path(directory)
    with atomic_dir(directory) as staging:
        if isinstance(model, PeftModel):  # a method that wraps the model in peft saves itself
            model.save_pretrained(staging, safe_serialization=True)
        else:
            merged = [name for name, layer in lora_layers(model).items() if layer.merged]
            if merged:
                raise ValueError(f"unmerge before saving: {len(merged)} layers are merged")
            config = peft_lora_config(
                plan,
                head_modules=head_modules,
                base_model_name_or_path=base_model_name_or_path,
                task_type=task_type,
                lora_dropout=lora_dropout_of(model) if lora_dropout is None else lora_dropout,
            )
            check_on_model(config, model)
            config.save_pretrained(staging)
            save_file(
                peft_state_dict(model, head_modules),
                staging / "adapter_model.safetensors",
                metadata={"format": "pt"},
            )
    return directory


PICKLED_WEIGHTS = (
    "adapter_model.bin",
    "adapter_model.pt",
    "adapter_model.pth",
    "pytorch_model.bin",
)


def load_adapter(
    model: nn.Module, directory: str | Path, *, shared_inputs: Sequence[Sequence[str]] = ()
) -> RankPlan:
    """Put a saved adapter (``save_adapter``'s format, or peft's LoRA) into ``model``.

    Only safetensors weights are read: a pickled file can run code when it is unpickled, so an
    adapter that ships one (``adapter_model.bin``) is refused, never opened.

    Raises:
        ValueError: no safetensors weights, a pickled weights file, or a non-LoRA adapter.
        KeyError: the adapter names a module the model lacks.
    """
    from safetensors.torch import load_file

    from gelora.lora.inject import inject_lora
    from gelora.ranks.plan import AdapterSpec

    directory = Path(directory)
    weights = directory / "adapter_model.safetensors"
    pickled = [name for name in PICKLED_WEIGHTS if (directory / name).exists()]
    if not weights.is_file():
        found = f" (found {', '.join(pickled)}: pickled, refused)" if pickled else ""
        raise ValueError(f"{directory}: no adapter_model.safetensors{found}; only safetensors load")
    if pickled:
        raise ValueError(
            f"{directory} also holds pickled weights ({', '.join(pickled)}): refusing the whole "
            "adapter; remove them to load the safetensors"
        )
    config = json.loads((directory / "adapter_config.json").read_text())
    if config.get("peft_type") != "LORA":
        raise ValueError(f"{directory}: a {config.get('peft_type')} adapter, not LoRA")
    state = load_file(weights)
    adapters = []
    for name in config["target_modules"]:
        base = model.get_submodule(name)
        rank = resolve_pattern(config.get("rank_pattern") or {}, name, config["r"])
        alpha = resolve_pattern(config.get("alpha_pattern") or {}, name, config["lora_alpha"])
        block = next((int(p) for p in name.split(".") if p.isdigit()), 0)
        adapters.append(
            AdapterSpec(name, block, rank, float(alpha), base.in_features, base.out_features)
        )
    plan = RankPlan(policy="loaded", adapters=tuple(adapters))
    inject_lora(model, plan, shared_inputs=shared_inputs)
    layers = lora_layers(model)
    with torch.no_grad():
        for key, tensor in state.items():
            name = key.removeprefix(PEFT_PREFIX)
            module_name, _, rest = name.rpartition(".lora_")
            if rest in ("A.weight", "B.weight") and module_name in layers:
                getattr(layers[module_name], f"lora_{rest[0]}").weight.copy_(tensor)
            else:  # a fully trained head module's parameter
                model.get_parameter(name).copy_(tensor)
    return plan
