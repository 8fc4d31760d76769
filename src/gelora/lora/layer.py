"""Our LoRA layer: a frozen ``nn.Linear`` plus a trainable low-rank update (Hu et al. 2021).

``y = W x + b + (alpha / r) * B A x`` with ``A: r x in`` and ``B: out x r``. Following peft's
``LoraLayer``, the original layer is wrapped as ``base_layer`` (not subclassed), ``A`` gets
Kaiming-uniform init and ``B`` zeros, so the model is unchanged at step 0; merging the update into
the base weight is explicit (``merge`` / ``unmerge``), never a side effect of ``eval()``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LoRALinear(nn.Module):
    """A LoRA-adapted linear map. ``scaling = alpha / rank`` lives here and nowhere else."""

    def __init__(self, base_layer: nn.Linear, rank: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        if not isinstance(base_layer, nn.Linear):
            raise TypeError(f"LoRALinear wraps nn.Linear, got {type(base_layer).__name__}")
        if rank < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        self.base_layer = base_layer
        self.rank = rank
        self.alpha = float(alpha)
        self.scaling = self.alpha / rank
        weight = base_layer.weight
        factory = {"device": weight.device, "dtype": weight.dtype}
        self.lora_A = nn.Linear(base_layer.in_features, rank, bias=False, **factory)
        self.lora_B = nn.Linear(rank, base_layer.out_features, bias=False, **factory)
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False
        self.reset_lora_parameters()

    @property
    def in_features(self) -> int:
        return self.base_layer.in_features

    @property
    def out_features(self) -> int:
        return self.base_layer.out_features

    @property
    def weight(self) -> torch.Tensor:
        """The base weight, for code that reads ``module.weight`` (e.g. dtype checks)."""
        return self.base_layer.weight

    def reset_lora_parameters(self) -> None:
        # peft's default: A ~ Kaiming-uniform(a=sqrt(5)), B = 0.
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def delta_weight(self) -> torch.Tensor:
        """The update ``scaling * B A`` in the base weight's shape ``(out, in)``."""
        return (self.lora_B.weight @ self.lora_A.weight) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base_layer(x)
        if self.merged:
            return result
        update = self.lora_B(self.lora_A(self.lora_dropout(x.to(self.lora_A.weight.dtype))))
        return result + (update * self.scaling).to(result.dtype)

    @torch.no_grad()
    def merge(self, *, safe: bool = True) -> None:
        """Add the update into the base weight; with ``safe``, refuse a non-finite result."""
        if self.merged:
            return
        merged = self.base_layer.weight + self.delta_weight().to(self.base_layer.weight.dtype)
        if safe and not torch.isfinite(merged).all():
            raise ValueError("merging the LoRA update gives non-finite weights; not merged")
        self.base_layer.weight.copy_(merged)
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if not self.merged:
            return
        self.base_layer.weight -= self.delta_weight().to(self.base_layer.weight.dtype)
        self.merged = False

    def extra_repr(self) -> str:
        merged = self.merged
        return f"rank={self.rank}, alpha={self.alpha:g}, scaling={self.scaling:g}, {merged=}"
