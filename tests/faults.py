"""Fault injection for the resilience tests: a callback that signals its own process.

Each fault fires once per run folder (a marker file in it says it did), so the resumed run is
given the very same command, ``+extra_callbacks.fault=...`` included: a resume must have the
settings of the run it continues (``gelora.run_folder``).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning as L


def _first_time(trainer: L.Trainer, name: str) -> bool:
    marker = Path(trainer.default_root_dir) / f"fault-{name}.fired"
    if marker.exists():
        return False
    marker.touch()
    return True


class SignalAtStep(L.Callback):
    """Sends ``signal_name`` (``SIGKILL``, ``SIGTERM``, ``SIGINT``: Ctrl-C) to this process after
    optimizer step ``step``: a run killed mid-training, at a known point."""

    def __init__(self, step: int, signal_name: str = "SIGKILL"):
        self.step = step
        self.signal = getattr(signal, signal_name)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step and _first_time(trainer, "signal"):
            os.kill(os.getpid(), self.signal)


class KillAtTestStart(L.Callback):
    """SIGKILLs this process when testing starts: a run killed after its last training step,
    before its record is written."""

    def on_test_start(self, trainer, pl_module) -> None:
        if _first_time(trainer, "test-start"):
            os.kill(os.getpid(), signal.SIGKILL)


class HangingShutdown(L.Callback):
    """After a Ctrl-C during training, a shutdown that hangs for ``seconds`` (a stuck dataloader
    worker, wandb uploading), while the user presses Ctrl-C again ``after`` seconds in."""

    def __init__(self, seconds: float = 60.0, after: float = 1.0):
        self.seconds, self.after = seconds, after

    def on_exception(self, trainer, pl_module, exception) -> None:
        import threading
        import time

        if isinstance(exception, KeyboardInterrupt):
            threading.Timer(self.after, os.kill, (os.getpid(), signal.SIGINT)).start()
            time.sleep(self.seconds)
