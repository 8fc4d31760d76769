"""Ctrl-C twice: the first stops the run cleanly, the second ends the process at once.

The first Ctrl-C stops training (Lightning's shutdown: callbacks, dataloader workers), writes
``results.json`` as ``interrupted`` with the command that resumes the run, and finishes the wandb
run. Lightning ignores Ctrl-C from then on (``signal.SIG_IGN``, set in its
``_call_and_handle_interrupt`` and never undone), so a shutdown that hangs (a dataloader worker,
wandb uploading an online run) could only be killed from another terminal. Here a second Ctrl-C
ends the process at once, with exit status 130 (128 + SIGINT, as a shell reports Ctrl-C), after
one line saying what it skipped.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

import lightning as L

log = logging.getLogger(__name__)
QUIT_STATUS = 130  # 128 + SIGINT


def quit_line(run_dir: Path) -> str:
    """What the second Ctrl-C says as it ends the process."""
    return (
        f"gelora-train: second Ctrl-C: quit at once; {run_dir}/results.json may not be written, "
        "and the same command resumes the run from its last checkpoint"
    )


def exit_on_next_ctrl_c(run_dir: Path) -> bool:
    """From now on, Ctrl-C ends this process at once: ``quit_line`` on stderr, then
    ``os._exit(130)`` (no cleanup: the cleanup is what the user is cutting short). Only the main
    thread may set a signal handler; elsewhere nothing changes. Whether the handler was set."""
    if threading.current_thread() is not threading.main_thread():
        return False
    if getattr(signal.getsignal(signal.SIGINT), "quits_at_once", False):
        return True  # armed already (in training, then again as the run ends)
    line = (quit_line(run_dir) + "\n").encode()

    def quit_now(signum, frame) -> None:
        os.write(2, b"\n" + line)
        os._exit(QUIT_STATUS)

    quit_now.quits_at_once = True  # type: ignore[attr-defined]
    signal.signal(signal.SIGINT, quit_now)
    log.warning("interrupted (Ctrl-C): stopping cleanly; Ctrl-C again quits at once")
    return True


class SecondCtrlCQuits(L.Callback):
    """Arms ``exit_on_next_ctrl_c`` as Lightning starts its shutdown after a first Ctrl-C
    (``on_exception``, called right after Lightning ignores Ctrl-C); first among the run's
    callbacks, so that no other callback's shutdown runs before it."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, KeyboardInterrupt):
            exit_on_next_ctrl_c(self.run_dir)
