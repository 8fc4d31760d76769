"""Fault injection for the resilience tests: a callback that signals its own process."""

from __future__ import annotations

import os
import signal

import lightning as L


class SignalAtStep(L.Callback):
    """Sends ``signal_name`` (``SIGKILL``, ``SIGTERM``) to this process after optimizer step
    ``step``: a run killed mid-training, at a known point."""

    def __init__(self, step: int, signal_name: str = "SIGKILL"):
        self.step = step
        self.signal = getattr(signal, signal_name)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signal)


class KillAtTestStart(L.Callback):
    """SIGKILLs this process when testing starts: a run killed after its last training step,
    before its record is written."""

    def on_test_start(self, trainer, pl_module) -> None:
        os.kill(os.getpid(), signal.SIGKILL)
