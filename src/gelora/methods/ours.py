"""Ours: the rank plan of any rank policy, trained in our own LoRA layers (``gelora.lora``).

GeLoRA (``ranks.GeLoRAPolicy``), uniform LoRA and the placement controls are all this method with
a different policy: the policy decides the ranks, this module puts them into the model.
``LoRALayersMethod`` is any method whose plan our layers carry (EVA plans its own ranks and sets
its own initial weights); ``InjectedLoRA`` is the one whose plan comes from a rank policy, and
``as_method`` wraps a rank policy in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from gelora.lora.inject import count_lora_parameters, inject_lora, mark_trainable
from gelora.methods.base import METHOD_MEMBERS, AdaptSettings, BaseMethod, Method
from gelora.ranks.budget import Budget
from gelora.ranks.plan import RankPlan, TargetModule
from gelora.ranks.policies import RankPolicy


class LoRALayersMethod(BaseMethod):
    """A method whose plan our ``LoRALinear`` layers carry: ``adapt`` injects them.

    Subclasses plan, and may set their own initial adapter weights in ``initialize_adapters``
    (EVA).
    """

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


class InjectedLoRA(LoRALayersMethod):
    """A ``Method``: ``policy`` plans, ``LoRALinear`` layers carry the plan.

    An allocator that reads the model before planning (``gelora.ranks.scoring``: a
    ``prepare_timing`` that is not ``None``) is prepared through this method: its ``prepare``,
    the new head's modules (``use_head``) and its ``summary`` for the run record are passed on.
    """

    def __init__(self, policy: RankPolicy):
        self.policy = policy

    @property
    def prepare_timing(self) -> str | None:
        return getattr(self.policy, "prepare_timing", None)

    def use_head(self, head_modules: Sequence[str]) -> None:
        """The new head's modules, for an allocator that redraws the head (``make_plan``)."""
        if hasattr(self.policy, "use_head"):
            self.policy.use_head(head_modules)

    def prepare(self, model, train_batches, targets, budget) -> None:
        if hasattr(self.policy, "prepare"):
            self.policy.prepare(model, train_batches, targets, budget)

    def summary(self, model: nn.Module) -> dict[str, Any] | None:
        """The allocator's own summary (its scores, their cost), if it keeps one."""
        return self.policy.summary() if hasattr(self.policy, "summary") else None

    @property
    def name(self) -> str:
        return self.policy.name

    @property
    def needs_intrinsic_dims(self) -> bool:
        return self.policy.needs_intrinsic_dims

    @property
    def needs_budget(self) -> bool:
        return bool(getattr(self.policy, "needs_budget", False))

    def plan(
        self,
        targets: Sequence[TargetModule],
        intrinsic_dims: Sequence[float] | None,
        budget: Budget | None = None,
    ) -> RankPlan:
        return self.policy.plan(targets, intrinsic_dims, budget)


def as_method(obj: object) -> Method:
    """``obj`` if it is a ``Method``, else a rank policy wrapped in our own LoRA layers.

    Raises:
        TypeError: ``obj`` is neither; or it has ``adapt`` (a method's own member, which a
            wrapped rank policy would silently lose) but lacks other members of ``Method``.
    """
    if isinstance(obj, Method):
        return obj
    if hasattr(obj, "adapt"):
        missing = [name for name in METHOD_MEMBERS if not hasattr(obj, name)]
        raise TypeError(
            f"{type(obj).__name__} has adapt but not Method's {', '.join(missing)}: subclass "
            "gelora.methods.base.BaseMethod (or LoRALayersMethod), which gives the defaults"
        )
    if hasattr(obj, "plan") and hasattr(obj, "name"):
        return InjectedLoRA(obj)
    raise TypeError(f"{type(obj).__name__} is neither a Method nor a rank policy")
