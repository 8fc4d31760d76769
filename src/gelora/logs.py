"""Logging helpers named by ``conf/hydra/job_logging/gelora.yaml``, and the libraries' console
output brought under it.

The console shows what a person running gelora reads; ``<run dir>/train.log`` keeps everything,
with what the console leaves out written at DEBUG level. Library lines that say nothing to the
user ("GPU available: False", Lightning's tips) are "chatter": the console handlers drop them and
the file handler relabels them DEBUG.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator

# (logger name prefix, message pattern) of library lines that say nothing to the user.
CHATTER: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("lightning", re.compile(r"(GPU|TPU|HPU|IPU) available: ")),
    ("lightning", re.compile(r"💡 Tip: ")),
    ("lightning", re.compile(r"Loading `\w+_dataloader` to estimate number of stepping batches")),
)
# Libraries whose loggers print to the console on their own unless routed to the root's handlers.
LIBRARY_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


def is_chatter(record: logging.LogRecord) -> bool:
    """Whether ``record`` is one of the library lines in ``CHATTER``."""
    message = record.getMessage()
    return any(
        record.name.startswith(prefix) and pattern.search(message) for prefix, pattern in CHATTER
    )


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class PlainFormatter(logging.Formatter):
    """The log file's formatter: a terminal's colour codes (transformers' report has some) are
    left out of a file read in an editor."""

    def __init__(self, format: str) -> None:  # the key ``logging.config`` passes
        super().__init__(fmt=format)

    def format(self, record: logging.LogRecord) -> str:
        return ANSI_ESCAPE.sub("", super().format(record))


class BelowWarning(logging.Filter):
    """Lets through records below WARNING: the stdout handler's share (stderr takes the rest)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


class HideChatter(logging.Filter):
    """Drops library chatter (``CHATTER``): the console handlers' filter."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not is_chatter(record)


class ChatterAsDebug(logging.Filter):
    """Relabels library chatter as DEBUG: the run's log file keeps it, below what matters."""

    def filter(self, record: logging.LogRecord) -> bool:
        if is_chatter(record):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


class _AsDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


@contextlib.contextmanager
def logged_as_debug(logger_name: str) -> Iterator[None]:
    """Within the block, every record of logger ``logger_name`` is relabelled DEBUG.

    For a library's report that gelora summarises in a line of its own (transformers' LOAD
    REPORT): the console, which shows INFO and above, leaves it out; ``train.log`` keeps it.
    A logger's filter applies to the records it creates, not to those of its children.
    """
    logger, demote = logging.getLogger(logger_name), _AsDebug()
    logger.addFilter(demote)
    try:
        yield
    finally:
        logger.removeFilter(demote)


def route_library_logs_to_root() -> None:
    """Let Lightning's and transformers' messages go through the run's logging only, once each.

    ``import lightning`` gives its logger a console handler of its own, and transformers prints
    through its own handler without propagating; under Hydra's logging (handlers on the root
    logger) their messages would print in their own format (or twice) and never reach the run's
    log file. When the root logger has handlers, the libraries' own are removed and their records
    propagate to the root's. Also ignores one deprecation warning that Lightning triggers inside
    torch and a user cannot act on.
    """
    if not logging.getLogger().hasHandlers():
        return  # no logging configured (a library user): keep the libraries' own console output
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        for handler in list(library.handlers):
            library.removeHandler(handler)
        library.propagate = True
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_default_handler()
    transformers_logging.enable_propagation()
    ignore_lightning_pytree_deprecation()


def ignore_lightning_pytree_deprecation() -> None:
    """Ignore torch's ``LeafSpec`` deprecation, raised from Lightning's own ``_pytree.py``.

    Lightning 2.6 builds a ``LeafSpec()`` when it flattens a batch, which recent torch deprecates.
    Only that message from that module is ignored: any other warning still shows.
    """
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
        module=r"lightning\.pytorch\.utilities\._pytree",
    )
