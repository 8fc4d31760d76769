"""Ours: the rank plan of any rank policy, trained in our own LoRA layers (``gelora.lora``).

GeLoRA (``ranks.GeLoRAPolicy``), uniform LoRA and the placement controls are all this method with
a different policy: the policy decides the ranks, this module puts them into the model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from torch import nn

from gelora.lora.inject import count_lora_parameters, inject_lora, mark_trainable
from gelora.methods.base import AdaptSettings
from gelora.ranks.budget import Budget
from gelora.ranks.plan import RankPlan, TargetModule
from gelora.ranks.policies import RankPolicy


class InjectedLoRA:
    """A ``Method``: ``policy`` plans, ``LoRALinear`` layers carry the plan.

    Subclasses may set their own initial adapter weights in ``initialize_adapters`` (EVA).
    """

    prepare_timing: str | None = None

    def __init__(self, policy: RankPolicy | None = None):
        self.policy = policy

    @property
    def name(self) -> str:
        return self.policy.name

    @property
    def needs_intrinsic_dims(self) -> bool:
        return self.policy.needs_intrinsic_dims

    def prepare(
        self,
        model: nn.Module,
        train_batches: Callable[[], Iterable[dict]],
        targets: Sequence[TargetModule],
        budget: Budget | None,
    ) -> None:
        return None

    def plan(
        self,
        targets: Sequence[TargetModule],
        intrinsic_dims: Sequence[float] | None,
        budget: Budget | None = None,
    ) -> RankPlan:
        return self.policy.plan(targets, intrinsic_dims, budget)

    def adapt(
        self, model: nn.Module, plan: RankPlan, settings: AdaptSettings, *, initialize: bool
    ) -> nn.Module:
        inject_lora(
            model,
            plan,
            dropout=settings.dropout,
            shared_inputs=[list(group) for group in settings.shared_inputs],
        )
        mark_trainable(model, settings.head_modules)
        if initialize:
            self.initialize_adapters(model)
        injected = count_lora_parameters(model)
        if injected != plan.trainable_adapter_params:
            raise RuntimeError(
                f"injected {injected} LoRA parameters, plan says {plan.trainable_adapter_params}"
            )
        return model

    def initialize_adapters(self, model: nn.Module) -> None:
        """Our layers start as LoRA does: A Kaiming-uniform, B zero (set by ``LoRALinear``)."""

    def callbacks(self) -> list:
        return []

    def summary(self, model: nn.Module) -> dict[str, Any] | None:
        return None
