"""Lightning strategies that need Python objects a YAML file cannot name directly."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from torch import nn


def resolve_class(name: str) -> type[nn.Module]:
    """``BertLayer`` (looked up in ``transformers``) or a dotted path ``pkg.module.Class``."""
    module_name, _, class_name = name.rpartition(".")
    module = importlib.import_module(module_name or "transformers")
    try:
        found = getattr(module, class_name)
    except AttributeError as error:
        raise ValueError(f"trainer.strategy.block_classes: no class {name!r}") from error
    if not (isinstance(found, type) and issubclass(found, nn.Module)):
        raise ValueError(f"trainer.strategy.block_classes: {name!r} is not an nn.Module class")
    return found


def fsdp_strategy(
    block_classes: str | Sequence[str],
    *,
    use_orig_params: bool = True,
    sharding_strategy: str = "FULL_SHARD",
    cpu_offload: bool = False,
    **kwargs,
):
    """Lightning's ``FSDPStrategy`` with every transformer block its own FSDP unit.

    ``use_orig_params=True`` keeps the original parameters visible inside each flat unit, so a
    unit may mix frozen base weights and trainable LoRA factors (FSDP otherwise requires one
    ``requires_grad`` per unit), and the optimiser sees only the trainable ones.
    """
    from lightning.pytorch.strategies import FSDPStrategy

    names = [block_classes] if isinstance(block_classes, str) else list(block_classes)
    return FSDPStrategy(
        auto_wrap_policy={resolve_class(name) for name in names},
        use_orig_params=use_orig_params,
        sharding_strategy=sharding_strategy,
        cpu_offload=cpu_offload,
        **kwargs,
    )
