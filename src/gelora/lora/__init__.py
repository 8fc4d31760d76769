"""Our LoRA layer and the injector that applies a rank plan to a model."""

from gelora.lora.inject import (
    adapter_parameters,
    count_lora_parameters,
    count_parameters,
    inject_lora,
    lora_layers,
    mark_trainable,
    set_merged,
)
from gelora.lora.layer import LoRALinear

__all__ = [
    "LoRALinear",
    "adapter_parameters",
    "count_lora_parameters",
    "count_parameters",
    "inject_lora",
    "lora_layers",
    "mark_trainable",
    "set_merged",
]
