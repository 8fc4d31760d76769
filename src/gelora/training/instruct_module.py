"""The Lightning module of instruction tuning: a LoRA-injected causal LM, trained on response
tokens only, validated by its held-out response loss."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchmetrics import MinMetric
from transformers import PreTrainedModel

from gelora.ranks.plan import RankPlan
from gelora.training.instruct_metrics import INSTRUCTION_METRICS, ResponseLoss
from gelora.training.module import LoRAClassifierModule


class LoRACausalLMModule(LoRAClassifierModule):
    """``LoRAClassifierModule`` for an ``AutoModelForCausalLM`` model.

    The adapters, their injection in ``configure_model``, the optimiser and the checkpoints are
    the classifier's; nothing but the adapters trains (no head: the model's own vocabulary
    logits). The training loss is Hugging Face's causal-LM loss on the labelled tokens (the
    datamodule masks the prompt with -100); validation and test keep the summed response-token
    NLL of the whole split (``ResponseLoss``) and log its mean and perplexity. The best
    validation score is the lowest (``val/response_loss_best``).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        *,
        rank_plan: RankPlan,
        metrics: Sequence[str] = INSTRUCTION_METRICS,
        test_splits: Sequence[str] = ("test",),
        **settings: Any,
    ):
        super().__init__(
            model,
            rank_plan=rank_plan,
            num_labels=0,
            metrics=metrics,
            problem="instruction",
            test_splits=test_splits,
            make_metrics=ResponseLoss,
            **settings,
        )
        self.val_best = MinMetric()

    def _logits(self, batch: dict) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return self.model(**inputs).logits

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.val_metrics.update(self._logits(batch), batch["labels"])

    def on_validation_epoch_end(self) -> None:
        scores = self.val_metrics.compute()
        self.val_metrics.reset()
        if self.trainer.sanity_checking:  # a few batches: not the split's score
            return
        self.val_best.update(scores[self.primary_metric])
        for name in self.metric_names:
            self.log(f"val/{name}", scores[name], prog_bar=name == self.primary_metric)
        self.log(f"val/{self.primary_metric}_best", self.val_best.compute())
        self.log("val/loss", scores["response_loss"])

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.test_metrics[dataloader_idx].update(self._logits(batch), batch["labels"])

    def on_test_epoch_end(self) -> None:
        for prefix, metric in zip(self.test_prefixes, self.test_metrics, strict=True):
            scores = metric.compute()
            metric.reset()
            for name in self.metric_names:
                self.log(f"{prefix}/{name}", scores[name], add_dataloader_idx=False)
