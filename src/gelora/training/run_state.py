"""What a checkpoint carries besides weights, so that a resume is the run it continues.

- ``RunStateCallback`` writes the run's settings (``gelora.run_folder.run_settings``) and the data
  fingerprints into every checkpoint, for the check before a resume, and the random number
  generators' states (Python, NumPy, torch CPU and CUDA), restored before the first training
  batch after a resume: dropout then draws the same masks as in an uninterrupted run.
- ``RunFolderCheckpoint`` reads its saved paths relative to its own folder, so a run folder that
  was moved or copied resumes and tests its own checkpoints, never the old folder's.

Everything is plain data and tensors: checkpoints are read with ``weights_only=True``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint


def capture_rng_states() -> dict[str, Any]:
    """The global generators' states as tensors and plain data (``weights_only``-loadable)."""
    version, python_state, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": [version, list(python_state), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Set the global generators to ``capture_rng_states``'s result."""
    version, python_state, gauss = states["python"]
    random.setstate((version, tuple(python_state), gauss))
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class RunStateCallback(L.Callback):
    """Run settings and generator states into every checkpoint; the states back on resume."""

    def __init__(self, settings: dict[str, Any], data: dict[str, str]):
        self.settings = settings
        self.data = data
        self._pending: dict[str, Any] | None = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["run_settings"] = {"settings": self.settings, "data": self.data}
        checkpoint["rng_states"] = capture_rng_states()

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self._pending = checkpoint.get("rng_states")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # Here, not at load time: setting up the loops after a restore may draw random numbers.
        if self._pending is not None:
            restore_rng_states(self._pending)
            self._pending = None


class RunFolderCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose restored paths point into its own ``dirpath``.

    Lightning saves absolute paths and, when the folder differs, keeps only ``best_model_path``
    (the old folder's) and drops the best score; here every saved path is re-read as
    ``dirpath / <file name>`` and the whole state is kept.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        here = Path(self.dirpath) if self.dirpath else None
        if here is None:
            super().load_state_dict(state_dict)
            return

        def local(path: Any) -> Any:
            return str(here / Path(path).name) if path else path

        state = dict(state_dict)
        state["dirpath"] = self.dirpath
        for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
            if key in state:
                state[key] = local(state[key])
        if "best_k_models" in state:
            state["best_k_models"] = {local(k): v for k, v in state["best_k_models"].items()}
        super().load_state_dict(state)
