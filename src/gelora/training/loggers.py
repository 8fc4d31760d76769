"""What a run records beyond the console: a wandb logger that keeps its run off the console, and
Lightning's model summary written to the run's log file only."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.utilities.model_summary import ModelSummary

log = logging.getLogger(__name__)
USER_DATA_DIR = os.environ.get("WANDB_DATA_DIR")  # as the user set it, before any run moved it


class WandbLogger(LightningWandbLogger):
    """Lightning's ``WandbLogger`` without the ``anonymous`` argument it always passes.

    Lightning hands ``anonymous=None`` to ``wandb.init`` unless asked for anonymous logging, and
    wandb (0.31) answers with "The anonymous setting has no effect" on every run. The argument is
    left out when it is ``None``; everything else is Lightning's. wandb's own console lines
    (banner, run history, sync hint) are turned off by ``settings.silent`` in
    ``conf/logger/wandb.yaml``, which still writes the run.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
        save_dir = kwargs.get("save_dir")
        if USER_DATA_DIR is None and save_dir:
            # wandb stages the files of logged tables and images under its data folder, by
            # default ~/.local/share/wandb, and never removes them there: two files a run piled
            # up in the user's home (issue 43). The run's own folder holds them instead; a
            # WANDB_DATA_DIR the user set is kept.
            os.environ["WANDB_DATA_DIR"] = str(Path(save_dir) / "wandb" / "data")


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
