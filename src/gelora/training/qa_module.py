"""The Lightning module of extractive QA: a LoRA-injected span-extraction model and SQuAD scores."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from transformers import PreTrainedModel

from gelora.ranks.plan import RankPlan
from gelora.training.module import LoRAClassifierModule
from gelora.training.qa_metrics import QA_METRICS, SpanLogits, squad_scores

# (split name, window indices, start logits, end logits) -> one answer text per question
SpanDecoder = Callable[[str, torch.Tensor, torch.Tensor, torch.Tensor], list[str]]


class LoRAQuestionAnsweringModule(LoRAClassifierModule):
    """``LoRAClassifierModule`` for an ``AutoModelForQuestionAnswering`` model.

    The adapters, their injection in ``configure_model``, the optimiser, the checkpoints and the
    validation loss are the classifier's; the loss is the QA head's (Hugging Face's: the mean of
    the start and end cross-entropies over a window's tokens). A split is scored only once all of
    its windows have passed: the span logits are kept (``SpanLogits``), then ``decode`` turns
    them into every question's answer, scored by SQuAD's exact match and F1 against the gold
    answers (``gelora.training.qa_metrics``).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        *,
        rank_plan: RankPlan,
        decode: SpanDecoder,
        gold_answers: Mapping[str, list[list[str]]],
        width: int,
        metrics: Sequence[str] = QA_METRICS,
        test_splits: Sequence[str] = ("test",),
        **settings: Any,
    ):
        """
        Args:
            decode: the datamodule's ``predictions``: a split's answers from its windows' logits.
            gold_answers: every evaluation split's gold answers per question, by split name
                (``validation``, ``test``, ``test_<name>``).
            width: the longest window in tokens (``task.max_length``).
            settings: the optimiser and adapter arguments of ``LoRAClassifierModule``.
        """
        super().__init__(
            model,
            rank_plan=rank_plan,
            num_labels=2,
            metrics=metrics,
            problem="extractive_qa",
            test_splits=test_splits,
            make_metrics=lambda: SpanLogits(width),
            **settings,
        )
        self.decode = decode
        self.gold_answers = dict(gold_answers)

    @staticmethod
    def _split_window_index(batch: dict) -> tuple[torch.Tensor, dict]:
        inputs = dict(batch)
        return inputs.pop("window_index"), inputs

    def _scores(self, split: str, logits: SpanLogits) -> dict[str, float]:
        index, start, end = logits.compute()
        logits.reset()
        return squad_scores(self.decode(split, index, start, end), self.gold_answers[split])

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        index, inputs = self._split_window_index(batch)
        outputs = self.model(**inputs)
        self.val_loss.update(outputs.loss)
        self.val_metrics.update(index, outputs.start_logits, outputs.end_logits)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:  # a few batches: not every question's windows
            self.val_metrics.reset()
            self.val_loss.reset()
            return
        scores = self._scores("validation", self.val_metrics)
        self.val_best.update(torch.tensor(scores[self.primary_metric]))
        for name in self.metric_names:
            self.log(f"val/{name}", scores[name], prog_bar=name == self.primary_metric)
        self.log(f"val/{self.primary_metric}_best", self.val_best.compute())
        self.log("val/loss", self.val_loss.compute())
        self.val_loss.reset()

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        index, inputs = self._split_window_index(batch)
        inputs.pop("start_positions", None)
        inputs.pop("end_positions", None)
        outputs = self.model(**inputs)
        self.test_metrics[dataloader_idx].update(index, outputs.start_logits, outputs.end_logits)

    def on_test_epoch_end(self) -> None:
        for prefix, logits in zip(self.test_prefixes, self.test_metrics, strict=True):
            scores = self._scores(prefix, logits)
            for name in self.metric_names:
                self.log(f"{prefix}/{name}", scores[name], add_dataloader_idx=False)
