"""AdaLoRA (Zhang et al., ICLR 2023) through peft, at our budgets, driven from Lightning.

peft's AdaLoRA owns the model: SVD-form adapters ``P diag(E) Q`` whose ranks are pruned during
training by a sensitivity score on a cubic budget schedule. Our plan records its *final* budget,
``target_r`` per matrix, i.e. ``target_r x n_matrices`` rank units as AdaLoRA counts them; it
starts at ``init_r = init_r_factor x target_r``.

peft's ``update_and_allocate(step)`` must run after every optimizer step, while the gradients
are still there (its sensitivity scores are ``|w * grad|``), before ``zero_grad``. Lightning zeroes
gradients at the start of the next step's closure, so ``on_train_batch_end`` is that moment; with
gradient accumulation it fires on every micro-batch, and only those after which ``global_step``
moved are real optimizer steps. peft counts steps from 0 (the step just taken).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch import nn

from gelora.errors import ConfigError
from gelora.lora.inject import count_lora_parameters
from gelora.methods.base import AdaptSettings, BaseMethod
from gelora.ranks.budget import Budget, equivalent_uniform_rank
from gelora.ranks.plan import RankPlan, TargetModule
from gelora.ranks.scaling import Scaling

log = logging.getLogger(__name__)


def _fraction_or_steps(value: float, total_steps: int, key: str) -> int:
    """A value below 1 is a share of the total steps; 1 or more is a step count."""
    if value < 0:
        raise ConfigError(f"rank_policy.{key} must be >= 0, got {value}")
    return round(value * total_steps) if value < 1 else int(value)


def adalora_layers(model: nn.Module) -> dict[str, nn.Module]:
    from peft.tuners.adalora import AdaLoraLayer

    return {n: m for n, m in model.named_modules() if isinstance(m, AdaLoraLayer)}


def effective_ranks(model) -> dict[str, int]:
    """Unpruned ranks per adapted module.

    AdaLoRA prunes by masking singular values; the masks it last applied are its config's
    ``rank_pattern`` (keyed by the ``lora_E`` parameter name). Before the first pruning, every
    module has its ``init_r``.
    """
    layers = adalora_layers(model.base_model.model)  # names as peft's RankAllocator sees them
    pattern = model.peft_config["default"].rank_pattern or {}
    ranks = {name: int(layer.r["default"]) for name, layer in layers.items()}
    for key, mask in pattern.items():
        module = key.rsplit(".lora_E", 1)[0]
        if module in ranks:
            ranks[module] = int(sum(bool(m) for m in mask))
    return ranks


def effective_adapter_params(model, ranks: dict[str, int] | None = None) -> int:
    """Parameters of the unpruned ranks: ``r (in + out + 1)`` per module (A, B and E); the
    ranks are ``effective_ranks(model)`` unless given."""
    layers = adalora_layers(model.base_model.model)
    total = 0
    for name, rank in (effective_ranks(model) if ranks is None else ranks).items():
        base = layers[name].get_base_layer()
        total += rank * (base.in_features + base.out_features + 1)
    return total


def weight_ranks(model) -> dict[str, int]:
    """Unpruned ranks per adapted module in the weights the model holds now: the non-zero
    singular values ``lora_E`` (AdaLoRA prunes by zeroing them, ``update_and_allocate``).

    After testing, the model holds the tested checkpoint's weights: a best-validation checkpoint
    saved before the last pruning holds more ranks than the masks at the end of training.
    """
    layers = adalora_layers(model.base_model.model)
    return {
        name: int(torch.count_nonzero(layer.lora_E["default"]).item())
        for name, layer in layers.items()
    }


class AdaLoRA(BaseMethod):
    """A ``Method``: peft's AdaLoRA with its final budget equal to ours.

    ``tinit``/``tfinal`` are warm-up and final fine-tuning phases (steps, or shares of the total
    when below 1); ``deltaT`` the steps between budget updates; ``total_step`` is set from the
    trainer's ``estimated_stepping_batches`` when training starts (``AdaLoRAAllocation``).
    """

    name = "adalora"
    needs_intrinsic_dims = False

    def __init__(
        self,
        target_r: int = 8,
        init_r_factor: float = 1.5,
        tinit: float = 0.1,
        tfinal: float = 0.2,
        deltaT: int = 10,
        beta1: float = 0.85,
        beta2: float = 0.85,
        orth_reg_weight: float = 0.1,
        scaling: Scaling | None = None,
    ):
        if target_r < 1:
            raise ValueError(f"rank_policy.target_r must be >= 1, got {target_r}")
        if init_r_factor < 1:
            raise ValueError(f"rank_policy.init_r_factor must be >= 1, got {init_r_factor}")
        if deltaT < 1:
            raise ValueError(f"rank_policy.deltaT must be >= 1, got {deltaT}")
        self.target_r = target_r
        self.init_r_factor = init_r_factor
        self.tinit = tinit
        self.tfinal = tfinal
        self.deltaT = deltaT
        self.beta1 = beta1
        self.beta2 = beta2
        self.orth_reg_weight = orth_reg_weight
        self.scaling = Scaling.of(scaling)
        self.allocation = AdaLoRAAllocation(self)
        self.initial_adapter_params: int | None = None

    def plan(
        self,
        targets: Sequence[TargetModule],
        intrinsic_dims: Sequence[float] | None = None,
        budget: Budget | None = None,
    ) -> RankPlan:
        """The final budget: ``target_r`` on every target (AdaLoRA moves it during training)."""
        target_r = equivalent_uniform_rank(targets, budget, self.target_r)
        init_r = self.init_r(target_r)
        notes = [
            f"AdaLoRA: final budget {target_r} x {len(targets)} rank units, "
            f"starting from init_r={init_r} per matrix"
        ]
        return RankPlan.from_target_ranks(
            self.name, targets, [target_r] * len(targets), self.scaling, notes=notes
        )

    def init_r(self, target_r: int) -> int:
        return max(target_r, math.ceil(self.init_r_factor * target_r))

    def adapt(
        self, model: nn.Module, plan: RankPlan, settings: AdaptSettings, *, initialize: bool = True
    ) -> nn.Module:
        """The model wrapped by peft's AdaLoRA on the plan's modules (heads fully trained)."""
        from peft import AdaLoraConfig, get_peft_model

        target_r = plan.adapters[0].rank
        init_r = self.init_r(target_r)
        config = AdaLoraConfig(
            target_r=target_r,
            init_r=init_r,
            # peft's SVDLinear multiplies by lora_alpha / init_r (its ranknum) throughout, so
            # this alpha gives the run's factor at the final rank target_r (the same as the
            # other methods' under the constant rule; under rsLoRA, that of the mean final rank).
            lora_alpha=self.scaling.factor(target_r) * init_r,
            target_modules=[a.module_name for a in plan.adapters],
            modules_to_save=list(settings.head_modules) or None,
            total_step=1_000_000,  # placeholder: AdaLoRAAllocation sets the real one at fit start
            tinit=0,
            tfinal=0,
            deltaT=self.deltaT,
            beta1=self.beta1,
            beta2=self.beta2,
            orth_reg_weight=self.orth_reg_weight,
            lora_dropout=0.0,
            # Without a task type, PeftModel.forward calls the bare transformers model and
            # skips AdaLoraModel.forward, which is where the orthogonal regulariser is added.
            task_type=settings.peft_task_type,
        )
        wrapped = get_peft_model(model, config)
        self.initial_adapter_params = count_lora_parameters(wrapped)
        return wrapped

    def schedule(self, total_steps: int) -> dict[str, int]:
        """peft's ``total_step``, ``tinit`` and ``tfinal`` for a run of ``total_steps``."""
        tinit = _fraction_or_steps(self.tinit, total_steps, "tinit")
        tfinal = _fraction_or_steps(self.tfinal, total_steps, "tfinal")
        if total_steps - tinit - tfinal <= 0:
            raise ConfigError(
                f"AdaLoRA needs steps to prune in: tinit={tinit} + tfinal={tfinal} >= "
                f"{total_steps} optimizer steps; lower rank_policy.tinit/tfinal or train longer"
            )
        return {"total_step": total_steps, "tinit": tinit, "tfinal": tfinal}

    def callbacks(self) -> list[L.Callback]:
        return [self.allocation]

    def summary(self, model: nn.Module) -> dict[str, Any]:
        final = effective_adapter_params(model)
        tested = effective_adapter_params(model, weight_ranks(model))
        log.info(
            "AdaLoRA adapter parameters: %s at the start, %s left unpruned at the end, %s in "
            "the tested weights",
            f"{self.initial_adapter_params:,}",
            f"{final:,}",
            f"{tested:,}",
        )
        return {
            "schedule": self.allocation.schedule,
            "initial_adapter_params": self.initial_adapter_params,
            "final_adapter_params": final,
            "tested_adapter_params": tested,
            "final_ranks": effective_ranks(model),
            "rank_budget_history": self.allocation.budget_history,
        }


class AdaLoRAAllocation(L.Callback):
    """Sets AdaLoRA's schedule from the run's length and calls ``update_and_allocate``."""

    def __init__(self, method: AdaLoRA, log_every_n_steps: int = 10):
        self.method = method
        self.log_every_n_steps = log_every_n_steps
        self.last_step = 0
        self.schedule: dict[str, int] = {}
        self.budget_history: list[tuple[int, int]] = []

    @staticmethod
    def _adalora_model(pl_module: L.LightningModule):
        return pl_module.model.base_model  # PeftModel -> AdaLoraModel

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.schedule = self.method.schedule(int(trainer.estimated_stepping_batches))
        config = self._adalora_model(pl_module).peft_config["default"]
        for key, value in self.schedule.items():
            setattr(config, key, value)  # the RankAllocator reads this same config object
        self.last_step = trainer.global_step
        self._record(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.last_step:
            return  # an accumulation micro-batch: no optimizer step was taken
        self.last_step = trainer.global_step
        self._adalora_model(pl_module).update_and_allocate(trainer.global_step - 1)
        if trainer.global_step % self.log_every_n_steps == 0:
            self._record(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record(trainer, pl_module)

    def _record(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        total = sum(effective_ranks(pl_module.model).values())
        self.budget_history.append((trainer.global_step, total))
        for logger in trainer.loggers:
            logger.log_metrics(
                {
                    "rank/total": total,
                    "adalora/params_effective": effective_adapter_params(pl_module.model),
                },
                step=trainer.global_step,
            )
