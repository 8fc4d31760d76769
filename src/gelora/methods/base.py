"""The ``Method`` protocol: what the planning and training stages ask of a fine-tuning method;
``BaseMethod``, its do-nothing defaults."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from gelora.ranks.budget import Budget
from gelora.ranks.plan import RankPlan, TargetModule

if TYPE_CHECKING:
    import lightning as L
    from torch import nn


@dataclass(frozen=True)
class AdaptSettings:
    """What the model config and ``lora`` say about adapting any model.

    Attributes:
        head_modules: modules trained in full (the new head), named from the model's root.
        dropout: LoRA dropout on the adapter input path.
        shared_inputs: groups of block-relative names of maps that read the same tensor.
        peft_task_type: peft's ``task_type`` for the model's head (``SEQ_CLS``,
            ``QUESTION_ANS``): methods that wrap the model in peft, and the exported adapter.
    """

    head_modules: tuple[str, ...]
    dropout: float = 0.0
    shared_inputs: tuple[tuple[str, ...], ...] = ()
    peft_task_type: str = "SEQ_CLS"


@runtime_checkable
class Method(Protocol):
    """A fine-tuning method, as the run's stages use it.

    Attributes:
        name: the method's name in tables and ``results.json``.
        needs_intrinsic_dims: whether ``plan`` reads the ID profile (then the plan's sensitivity
            to the hidden-state sample is measured by re-planning on every resampled profile).
        prepare_timing: the ``timings`` key of ``prepare``'s wall time, or ``None`` when
            ``prepare`` does nothing.
    """

    name: str
    needs_intrinsic_dims: bool
    prepare_timing: str | None

    def prepare(
        self,
        model: nn.Module,
        train_batches: Callable[[], Iterable[dict]],
        targets: Sequence[TargetModule],
        budget: Budget | None,
    ) -> None:
        """Look at the frozen pretrained model before planning (EVA's activation SVD)."""

    def plan(
        self,
        targets: Sequence[TargetModule],
        intrinsic_dims: Sequence[float] | None,
        budget: Budget | None = None,
    ) -> RankPlan:
        """The adapters: module, rank and alpha, within ``budget`` when one is given."""

    def adapt(
        self, model: nn.Module, plan: RankPlan, settings: AdaptSettings, *, initialize: bool
    ) -> nn.Module:
        """The model carrying ``plan``'s adapters, with only adapters and head trainable.

        ``initialize=False`` (a resumed run) skips the method's own initial adapter weights,
        since the checkpoint's replace them.
        """

    def callbacks(self) -> list[L.Callback]:
        """Lightning callbacks the method needs during training."""

    def summary(self, model: nn.Module) -> dict[str, Any] | None:
        """Method-specific facts for the run record (``method_summary``), after training."""


# Every member of ``Method``: a class with ``adapt`` that lacks one is refused by ``as_method``.
METHOD_MEMBERS = (
    "name",
    "needs_intrinsic_dims",
    "prepare_timing",
    "prepare",
    "plan",
    "adapt",
    "callbacks",
    "summary",
)


class BaseMethod:
    """What a method does by default: nothing before planning, no callbacks, no summary.

    Subclasses set ``name`` and ``needs_intrinsic_dims`` and write ``plan`` and ``adapt``
    (AdaLoRA); ``methods.ours.LoRALayersMethod`` also writes ``adapt``, in our own LoRA layers.
    """

    prepare_timing: str | None = None
    # Whether the method cannot plan without a budget: checked before any model loads
    # (``gelora.stages.plan.check_budget_given``). Optional for a ``Method``: absent is False.
    needs_budget: bool = False

    def prepare(
        self,
        model: nn.Module,
        train_batches: Callable[[], Iterable[dict]],
        targets: Sequence[TargetModule],
        budget: Budget | None,
    ) -> None:
        return None

    def callbacks(self) -> list[L.Callback]:
        return []

    def summary(self, model: nn.Module) -> dict[str, Any] | None:
        return None
