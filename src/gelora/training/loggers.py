"""What a run records beyond the console: a wandb logger that keeps its run off the console, and
Lightning's model summary written to the run's log file only."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.utilities.model_summary import ModelSummary

log = logging.getLogger(__name__)
USER_DATA_DIR = os.environ.get("WANDB_DATA_DIR")  # as the user set it, before any run moved it
USER_MODE = os.environ.get("WANDB_MODE")  # as the user set it: Lightning's offline overwrites it


class WandbLogger(LightningWandbLogger):
    """Lightning's ``WandbLogger`` without the ``anonymous`` argument it always passes.

    Lightning hands ``anonymous=None`` to ``wandb.init`` unless asked for anonymous logging, and
    wandb (0.31) answers with "The anonymous setting has no effect" on every run. The argument is
    left out when it is ``None``; everything else is Lightning's. wandb's own console lines
    (banner, run history, sync hint) are turned off by ``settings.silent`` in
    ``conf/logger/wandb.yaml``, which still writes the run.

    A ``WANDB_MODE`` the user set (``online``, ``offline``, ``disabled``) wins over ``offline``:
    Lightning's ``offline=True`` would overwrite it with ``dryrun``, so that
    ``WANDB_MODE=online gelora-train ...`` still wrote an offline run.
    """

    def __init__(self, *args: Any, offline: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, offline=offline and not USER_MODE, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
        save_dir = kwargs.get("save_dir")
        if USER_DATA_DIR is None and save_dir:
            # wandb stages the files of logged tables and images under its data folder, by
            # default ~/.local/share/wandb, and never removes them there: two files a run piled
            # up in the user's home (issue 43). The run's own folder holds them instead; a
            # WANDB_DATA_DIR the user set is kept.
            os.environ["WANDB_DATA_DIR"] = str(Path(save_dir) / "wandb" / "data")


def plan_config(block_ranks: Sequence[int], total_rank: int) -> dict[str, Any]:
    """The rank plan as run-config keys: ``rank_plan/block_03: 5`` per block (its largest
    rank: ``RankPlan.block_ranks``), the plan as one string (``rank_plan/plan: "8,8,4,2"``,
    block 0 first) and ``rank_plan/total`` (every adapted matrix's rank, summed: ``rank/total``),
    so that a dashboard filters and groups runs by their plan as by any other setting."""
    config: dict[str, Any] = {f"rank_plan/block_{i:02d}": r for i, r in enumerate(block_ranks)}
    config["rank_plan/plan"] = ",".join(str(r) for r in block_ranks)
    config["rank_plan/total"] = total_rank
    return config


def log_plan_charts(
    logger: LightningWandbLogger,
    ids: Sequence[float],
    spreads: Sequence[float | None],
    block_ranks: Sequence[int],
) -> None:
    """The ID profile and the rank plan as wandb charts drawn from the run's own tables: a line
    over ``plan/id_profile_table`` (layer, ID, spread: the resamples' standard deviation, null
    without resamples) and bars over ``plan/block_ranks_table`` (block, rank). wandb adds the
    ``_table`` to each key; the charts are the panels ``plan/id_profile`` and
    ``plan/block_ranks``."""
    import wandb

    profile = wandb.Table(
        columns=["layer", "ID", "spread"],
        data=[[i, d, s] for i, (d, s) in enumerate(zip(ids, spreads, strict=True))],
    )
    ranks = wandb.Table(
        columns=["block", "rank"], data=[[f"block_{i:02d}", r] for i, r in enumerate(block_ranks)]
    )
    charts = {
        "plan/id_profile": wandb.plot.line(profile, "layer", "ID", title="ID profile"),
        "plan/block_ranks": wandb.plot.bar(ranks, "block", "rank", title="rank per block"),
    }
    logger.log_metrics(charts, step=0)


class ModelSummaryToLog(L.Callback):
    """Lightning's model summary table, written to the run's log file at DEBUG level.

    The console has gelora's one-line parameter count ("trainable: ..."); Lightning's own summary
    (``trainer.enable_model_summary``, off by default) prints a table whose FLOPs read 0 for
    models without an ``example_input_array``.
    """

    def __init__(self, max_depth: int = 1) -> None:
        self.max_depth = max_depth

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and log.isEnabledFor(logging.DEBUG):
            log.debug("model summary:\n%s", ModelSummary(pl_module, max_depth=self.max_depth))


class ProgressLines(L.Callback):
    """Progress as plain lines when the console is not a terminal (nohup, a SLURM job, a pipe):
    Lightning's progress bar then writes nothing until its last frame. Every ``every_n_steps``
    optimizer steps one line (step/total, loss, learning rate, samples per second, time left)
    and one per validation (the monitored score and the best so far), through the log: on the
    console and in ``train.log``. ``enabled`` None: on exactly when stdout is not a TTY."""

    def __init__(self, every_n_steps: int = 50, enabled: bool | None = None) -> None:
        import sys

        self.every_n_steps = every_n_steps
        self.enabled = (not sys.stdout.isatty()) if enabled is None else enabled
        self._start: tuple[float, int] | None = None
        self._samples = 0
        self._tokens = 0
        self._seconds: float | None = None
        self._last_step = -1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import time

        self._start = (time.perf_counter(), trainer.global_step)
        self._samples = self._tokens = 0

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import time

        if self._start is not None:
            self._seconds = time.perf_counter() - self._start[0]

    def pace(self) -> dict[str, Any]:
        """Training throughput of this process's fit: samples and non-padding tokens, seconds,
        and their rates (None where nothing was counted)."""
        seconds = self._seconds
        tokens = int(self._tokens)  # a device tensor summed over the steps, or 0
        rate = lambda n: round(n / seconds, 2) if seconds and n else None  # noqa: E731
        return {
            "train_samples": self._samples,
            "train_tokens": tokens or None,
            "train_s": None if seconds is None else round(seconds, 3),
            "samples_per_s": rate(self._samples),
            "tokens_per_s": rate(tokens),
        }

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._samples += _batch_size(batch)
        mask = batch.get("attention_mask") if isinstance(batch, Mapping) else None
        if mask is not None and hasattr(mask, "sum"):
            # a tensor sum, kept on the batch's device: int() here would wait for the GPU at
            # every step; pace() reads it once
            self._tokens = self._tokens + mask.sum()
        step = trainer.global_step
        if not self.enabled or step == self._last_step or step % self.every_n_steps:
            return
        self._last_step = step
        log.info(self.step_line(trainer, outputs, step))

    def step_line(self, trainer: L.Trainer, outputs: Any, step: int) -> str:
        import time

        started, first = self._start or (time.perf_counter(), step)
        seconds = max(time.perf_counter() - started, 1e-9)
        done = max(step - first, 1)
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        if total is None:  # a cap in epochs: Lightning's count of the steps they take
            estimated = getattr(trainer, "estimated_stepping_batches", None)
            total = (
                int(estimated) if isinstance(estimated, int | float) and estimated < 1e12 else None
            )
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        parts = [f"step {step}" + (f"/{total}" if total else "")]
        if loss is not None:
            parts.append(f"loss {float(loss):.4f}")
        if trainer.optimizers:
            parts.append(f"lr {trainer.optimizers[0].param_groups[0]['lr']:.3g}")
        parts.append(f"{self._samples / seconds:.1f} samples/s")
        if total:
            parts.append(f"time left (at the cap) {_duration((total - step) * seconds / done)}")
        return "train: " + ", ".join(parts)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.enabled or trainer.sanity_checking:
            return
        scores = {
            key: float(value)
            for key, value in trainer.callback_metrics.items()
            if key.startswith("val/") and getattr(value, "numel", lambda: 1)() == 1
        }
        shown = ", ".join(f"{key} {value:.4f}" for key, value in sorted(scores.items()))
        log.info(f"validation at step {trainer.global_step}: {shown or 'no score'}")


def _batch_size(batch: Any) -> int:
    """The number of examples in a batch (the first dimension of its first tensor)."""
    if isinstance(batch, Mapping):  # a dict, or transformers' BatchEncoding
        values = list(batch.values())
    else:
        values = list(batch) if isinstance(batch, list | tuple) else [batch]
    for value in values:
        shape = getattr(value, "shape", None)
        if shape:
            return int(shape[0])
    return 0


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
