"""Drive peft's AdaLoRA budget schedule from Lightning.

peft's ``update_and_allocate(step)`` must run after every optimizer step, while the gradients
are still there (its sensitivity scores are ``|w * grad|``), before ``zero_grad``. Lightning zeroes
gradients at the start of the next step's closure, so ``on_train_batch_end`` is that moment; with
gradient accumulation it fires on every micro-batch, and only those after which ``global_step``
moved are real optimizer steps. peft counts steps from 0 (the step just taken).
"""

from __future__ import annotations

import lightning as L
from torch import nn

from gelora.ranks.peft_policies import AdaLoRAPolicy


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


def effective_adapter_params(model) -> int:
    """Parameters of the unpruned ranks: ``r (in + out + 1)`` per module (A, B and E)."""
    layers = adalora_layers(model.base_model.model)
    total = 0
    for name, rank in effective_ranks(model).items():
        base = layers[name].get_base_layer()
        total += rank * (base.in_features + base.out_features + 1)
    return total


class AdaLoRAAllocation(L.Callback):
    """Sets AdaLoRA's schedule from the run's length and calls ``update_and_allocate``."""

    def __init__(self, policy: AdaLoRAPolicy, log_every_n_steps: int = 10):
        self.policy = policy
        self.log_every_n_steps = log_every_n_steps
        self.last_step = 0
        self.schedule: dict[str, int] = {}
        self.budget_history: list[tuple[int, int]] = []

    @staticmethod
    def _adalora_model(pl_module: L.LightningModule):
        return pl_module.model.base_model  # PeftModel -> AdaLoraModel

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.schedule = self.policy.schedule(int(trainer.estimated_stepping_batches))
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
