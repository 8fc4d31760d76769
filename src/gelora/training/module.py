"""The Lightning module: a LoRA-injected Hugging Face classifier (or regressor), its optimiser and
its metrics."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence

import lightning as L
import torch
import torch.distributed as dist
from torchmetrics import MaxMetric, MeanMetric
from transformers import PreTrainedModel

from gelora.lora.inject import ParameterCounts, adapter_parameters, lora_layers
from gelora.ranks.plan import RankPlan
from gelora.training.metrics import build_metrics


def adapter_digest(model: torch.nn.Module) -> str:
    """A fingerprint of the adapters a model carries: every adapted module, its rank and shape."""
    layers = {
        name: [layer.rank, layer.in_features, layer.out_features]
        for name, layer in lora_layers(model).items()
    }
    peft = {n: [tuple(p.shape) for p in ps] for n, ps in _peft_adapter_shapes(model).items()}
    text = json.dumps({"ours": layers, "peft": peft}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _peft_adapter_shapes(model: torch.nn.Module) -> dict[str, list[torch.Tensor]]:
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:  # pragma: no cover
        return {}
    return {
        name: [p for attr in module.adapter_layer_names for p in getattr(module, attr).parameters()]
        for name, module in model.named_modules()
        if isinstance(module, LoraLayer)
    }


class LoRAClassifierModule(L.LightningModule):
    """Trains only what the model marks trainable (LoRA factors and the head).

    Checkpoints hold those trainable tensors and the rank plan, not the frozen base weights: they
    stay small, and a resumed run rebuilds the very same adapters.

    With ``adapt``, the adapters are put in when Lightning calls ``configure_model``: after the
    processes of a distributed run have joined, and before DDP or FSDP wraps the model. The rank
    plan of global rank 0 is broadcast first, so every process injects the very same plan (each
    process's own plan is only compared with it), and a fingerprint of the injected adapters is
    gathered from every process into ``plan_agreement``.
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
        adapt: Callable[[torch.nn.Module, RankPlan], torch.nn.Module] | None = None,
        make_metrics: Callable[[], torch.nn.Module] | None = None,
    ):
        """
        Args:
            adapt: puts the plan's adapters into the model and returns it (``None``: the model
                already carries them).
            metrics: names from ``gelora.training.metrics.METRICS``; the first is the primary one
                (``val/<first>_best``, the checkpoint monitor).
            problem: ``classification`` (argmax of the logits) or ``regression`` (the one logit).
            test_splits: names of the test dataloaders in order; ``test`` logs as ``test/<m>``,
                any other name ``x`` as ``test_x/<m>`` (MNLI's mismatched set).
            make_metrics: a split's metric state (one for validation, one per test split);
                ``None``: the task's metrics by name (``build_metrics``).
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
        if make_metrics is None:
            names = self.metric_names

            def make_metrics() -> torch.nn.Module:
                return build_metrics(names, problem, num_labels)

        self.val_metrics = make_metrics()
        self.test_prefixes = ["test" if name == "test" else f"test_{name}" for name in test_splits]
        self.test_metrics = torch.nn.ModuleList(make_metrics() for _ in self.test_prefixes)
        self.val_best = MaxMetric()
        self.val_loss = MeanMetric()
        self.strict_loading = False  # checkpoints carry the trainable tensors only
        self._total_steps: int | None = None  # set in on_train_start
        self._adapt = adapt
        self.plan_agreement: dict = {}
        self.parameter_counts: ParameterCounts | None = None  # right after ``adapt``

    def configure_model(self) -> None:
        if self._adapt is None:
            return
        adapt, self._adapt = self._adapt, None  # once: test and predict call this hook again
        local = self.rank_plan
        strategy = self.trainer.strategy
        plan = RankPlan.from_dict(strategy.broadcast(local.to_dict(), src=0))
        self.rank_plan = plan
        self.model = adapt(self.model, plan).train()
        self.parameter_counts = ParameterCounts.of(self.model)  # before a method prunes any
        mine = (adapter_digest(self.model), local == plan)
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        every = [mine]
        if world > 1:
            every = [None] * world
            dist.all_gather_object(every, mine)
        self.plan_agreement = {
            "world_size": world,
            "plan_source": "global rank 0, broadcast to every process",
            "adapter_digest_per_rank": [digest for digest, _ in every],
            "own_plan_matched_rank_0_per_rank": [matched for _, matched in every],
        }

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
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self._warmup_then_decay)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def _warmup_then_decay(self, step: int) -> float:
        """Linear warm-up over ``warmup_ratio`` of all steps, then linear decay to 0, as
        ``transformers.get_linear_schedule_with_warmup``. The number of steps is read in
        ``on_train_start``: asking Lightning for it in ``configure_optimizers`` sets up the
        training loader before a resumed run's loader state is restored, and the resumed epoch
        then starts over from its first batch."""
        total = self._total_steps or 1
        warmup = int(self.warmup_ratio * total)
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    def on_train_start(self) -> None:
        self._total_steps = int(self.trainer.estimated_stepping_batches)
        for config in self.trainer.lr_scheduler_configs:  # the rates of the current step, again
            scheduler = config.scheduler
            groups = scheduler.optimizer.param_groups
            for group, base_lr in zip(groups, scheduler.base_lrs, strict=True):
                group["lr"] = base_lr * self._warmup_then_decay(scheduler.last_epoch)
            scheduler._last_lr = [group["lr"] for group in groups]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        trainable = {f"model.{n}" for n, p in self.model.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {
            key: value
            for key, value in checkpoint["state_dict"].items()
            if key in trainable or not key.startswith("model.")
        }
        checkpoint["rank_plan"] = self.rank_plan.to_dict()
