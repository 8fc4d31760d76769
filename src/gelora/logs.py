"""Logging helpers named by ``conf/hydra/job_logging/gelora.yaml``."""

from __future__ import annotations

import logging


class BelowWarning(logging.Filter):
    """Lets through records below WARNING: the stdout handler's share (stderr takes the rest)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


def route_library_logs_to_root() -> None:
    """Let Lightning's messages go through the run's logging only, once each.

    ``import lightning`` gives its logger a console handler of its own; under Hydra's logging
    (handlers on the root logger) every message would print twice and never reach the run's log
    file. When the root logger has handlers, Lightning's own are removed and its records
    propagate to the root's.
    """
    if not logging.getLogger().hasHandlers():
        return  # no logging configured (a library user): keep Lightning's own console output
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        library = logging.getLogger(name)
        for handler in list(library.handlers):
            library.removeHandler(handler)
        library.propagate = True
