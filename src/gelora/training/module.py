"""The Lightning module: a LoRA-injected Hugging Face classifier (or regressor), its optimiser and
its metrics."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from torchmetrics import MaxMetric, MeanMetric
from transformers import PreTrainedModel, get_linear_schedule_with_warmup

from gelora.lora.inject import adapter_parameters
from gelora.ranks.plan import RankPlan
from gelora.training.metrics import build_metrics


class LoRAClassifierModule(L.LightningModule):
    """Trains only what the model marks trainable (LoRA factors and the head).

    Checkpoints hold those trainable tensors and the rank plan, not the frozen base weights: they
    stay small, and a resumed run rebuilds the very same adapters.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        *,
        rank_plan: RankPlan,
        num_labels: int,
        metrics: Sequence[str] = ("accuracy",),
        problem: str = "classification",
        test_splits: Sequence[str] = ("test",),
        lr: float = 1e-3,
        head_lr: float | None = None,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.06,
    ):
        """
        Args:
            metrics: names from ``gelora.training.metrics.METRICS``; the first is the primary one
                (``val/<first>_best``, the checkpoint monitor).
            problem: ``classification`` (argmax of the logits) or ``regression`` (the one logit).
            test_splits: names of the test dataloaders in order; ``test`` logs as ``test/<m>``,
                any other name ``x`` as ``test_x/<m>`` (MNLI's mismatched set).
        """
        super().__init__()
        self.model = model.train()  # from_pretrained returns eval mode: dropout would stay off
        self.rank_plan = rank_plan
        self.metric_names = list(metrics)
        self.primary_metric = self.metric_names[0]
        self.problem = problem
        self.lr = lr
        self.head_lr = head_lr if head_lr is not None else lr
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.val_metrics = build_metrics(self.metric_names, problem, num_labels)
        self.test_prefixes = ["test" if name == "test" else f"test_{name}" for name in test_splits]
        self.test_metrics = torch.nn.ModuleList(
            build_metrics(self.metric_names, problem, num_labels) for _ in self.test_prefixes
        )
        self.val_best = MaxMetric()
        self.val_loss = MeanMetric()
        self.strict_loading = False  # checkpoints carry the trainable tensors only

    def forward(self, **batch) -> torch.Tensor:
        return self.model(**batch).logits

    def predictions(self, logits: torch.Tensor) -> torch.Tensor:
        """Class indices, or the regression head's single output."""
        return logits.squeeze(-1) if self.problem == "regression" else logits.argmax(dim=-1)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.model(**batch).loss
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite training loss {loss.item()} at step {self.global_step}"
            )
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        outputs = self.model(**batch)
        self.val_loss.update(outputs.loss)
        self.val_metrics.update(self.predictions(outputs.logits), batch["labels"])

    def on_validation_epoch_end(self) -> None:
        scores = self.val_metrics.compute()
        self.val_best.update(scores[self.primary_metric])
        for name, score in scores.items():
            self.log(f"val/{name}", score, prog_bar=name == self.primary_metric)
        self.log(f"val/{self.primary_metric}_best", self.val_best.compute())
        self.log("val/loss", self.val_loss.compute())
        self.val_metrics.reset()
        self.val_loss.reset()

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        logits = self.model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        self.test_metrics[dataloader_idx].update(self.predictions(logits), batch["labels"])

    def on_test_epoch_end(self) -> None:
        for prefix, metrics in zip(self.test_prefixes, self.test_metrics, strict=True):
            for name, score in metrics.compute().items():
                self.log(f"{prefix}/{name}", score, add_dataloader_idx=False)
            metrics.reset()

    def configure_optimizers(self):
        lora_ids = {id(p) for p in adapter_parameters(self.model)}
        groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
        for parameter in self.model.parameters():
            if not parameter.requires_grad:
                continue
            is_lora = id(parameter) in lora_ids
            lr = self.lr if is_lora else self.head_lr
            # Biases and LayerNorm gains (1-D) are not decayed, as in BERT.
            decay = self.weight_decay if parameter.ndim >= 2 else 0.0
            groups.setdefault((lr, decay), []).append(parameter)
        optimizer = torch.optim.AdamW(
            [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]
        )
        total_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = get_linear_schedule_with_warmup(
            optimizer, int(self.warmup_ratio * total_steps), total_steps
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        trainable = {f"model.{n}" for n, p in self.model.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {
            key: value
            for key, value in checkpoint["state_dict"].items()
            if key in trainable or not key.startswith("model.")
        }
        checkpoint["rank_plan"] = self.rank_plan.to_dict()
