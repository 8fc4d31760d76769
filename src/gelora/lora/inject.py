"""Apply a rank plan: swap each planned ``nn.Linear`` for a ``LoRALinear`` and freeze the rest."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from torch import nn

from gelora.lora.layer import LoRALinear, SharedDownProjection
from gelora.ranks.plan import RankPlan


def _parent_and_attr(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent_name, _, attr = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), attr


def inject_lora(
    model: nn.Module,
    plan: RankPlan,
    *,
    dropout: float = 0.0,
    shared_inputs: Sequence[Sequence[str]] = (),
) -> nn.Module:
    """Replace every module the plan names by a ``LoRALinear`` of its rank and alpha, in place.

    ``shared_inputs`` lists groups of block-relative module names that read the same input
    tensor (e.g. ``attention.self.query``, ``.key``, ``.value``); within each block, the adapted
    members of a group share one down-projection GEMM (``SharedDownProjection``). Sharing is a
    speed-up only, so it is skipped with dropout (one mask per layer) or fewer than two members.

    Raises:
        KeyError: a planned module does not exist.
        TypeError: a planned module is not an ``nn.Linear`` (or is already adapted).
    """
    for spec in plan.adapters:
        try:
            base = model.get_submodule(spec.module_name)
        except AttributeError as error:
            raise KeyError(
                f"rank plan names {spec.module_name!r}, which the model lacks"
            ) from error
        if not isinstance(base, nn.Linear):
            raise TypeError(f"{spec.module_name} is a {type(base).__name__}, not an nn.Linear")
        parent, attr = _parent_and_attr(model, spec.module_name)
        setattr(parent, attr, LoRALinear(base, rank=spec.rank, alpha=spec.alpha, dropout=dropout))
    if dropout == 0:
        for members in shared_input_groups(plan, shared_inputs):
            group = SharedDownProjection([model.get_submodule(name) for name in members])
            for layer in group.members:
                layer.shared_down_projection = group
    return model


def shared_input_groups(plan: RankPlan, shared_inputs: Sequence[Sequence[str]]) -> list[list[str]]:
    """Full names of the planned modules of each block that fall in one ``shared_inputs`` group."""
    groups = []
    for relative_names in shared_inputs:
        by_block: dict[int, list[str]] = {}
        for spec in plan.adapters:
            if any(spec.module_name.endswith("." + rel) for rel in relative_names):
                by_block.setdefault(spec.block, []).append(spec.module_name)
        groups += [names for names in by_block.values() if len(names) >= 2]
    return groups


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    return {
        name: module for name, module in model.named_modules() if isinstance(module, LoRALinear)
    }


def mark_trainable(model: nn.Module, head_modules: Iterable[str] = ()) -> None:
    """Freeze everything, then unfreeze LoRA factors (by module type) and the named head modules."""
    model.requires_grad_(False)
    for layer in lora_layers(model).values():
        layer.lora_A.requires_grad_(True)
        layer.lora_B.requires_grad_(True)
    for name in head_modules:
        try:
            model.get_submodule(name).requires_grad_(True)
        except AttributeError as error:
            raise KeyError(f"head module {name!r} not found in the model") from error


def adapter_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The adapter factors: ours (``LoRALinear``) and peft's (``LoraLayer`` and its subclasses),
    found by module type, never by a substring of the parameter name."""
    parameters = [
        p
        for layer in lora_layers(model).values()
        for factor in (layer.lora_A, layer.lora_B)
        for p in factor.parameters()
    ]
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:  # pragma: no cover - peft is a dependency
        return parameters
    for module in model.modules():
        if isinstance(module, LoraLayer):
            for attribute in module.adapter_layer_names:
                parameters += list(getattr(module, attribute).parameters())
    return parameters


def count_lora_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    return sum(
        p.numel() for p in adapter_parameters(model) if p.requires_grad or not trainable_only
    )


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def set_merged(model: nn.Module, merged: bool) -> None:
    """Merge (``True``) or unmerge (``False``) every LoRA layer of the model."""
    for layer in lora_layers(model).values():
        layer.merge() if merged else layer.unmerge()


@dataclass(frozen=True)
class ParameterCounts:
    """A model's parameters: in LoRA adapters (trainable), trainable in all, and in all."""

    adapter: int
    trainable: int
    total: int

    @classmethod
    def of(cls, model: nn.Module) -> ParameterCounts:
        return cls(
            adapter=count_lora_parameters(model),
            trainable=count_parameters(model, trainable_only=True),
            total=count_parameters(model),
        )
