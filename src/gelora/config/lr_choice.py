"""The learning rate a run trains at, resolved in one place, and the rates chosen on validation.

Every place a rate may come from sits under one config node, ``lr_sources`` (``conf/train.yaml``;
``gelora-train --cfg job`` prints it), and ``optimizer.lr: ${gelora_lr:}`` reads the first of
them that is set, in the order of ``LR_SOURCES`` (docs/experiments.md, "Where a learning rate
comes from"):

1. ``fixed``: a number a config file sets (an experiment's, a ``method=`` or ``debug=`` file's);
2. ``chosen_on_validation``: a table row's rate chosen on validation,
   ``${gelora_chosen_lr:<row>,<task>}``;
3. ``published``: a paper's per-task rate (``glue_deberta_v3``: AdaLoRA's);
4. ``task_default``: ``${task.lr}``.

A number given as ``optimizer.lr=X`` (the command line, a sweep's grid) replaces the reader and
wins. ``lr_source`` names where a run's rate came from, for its log, through the same
``first_source``.

``gelora-table <lr grid> --select-lr conf/lr_choice/<experiment>.yaml`` writes
``lr_choice.<row>.<task>`` (or ``lr_choice.<row>.<task>.<key>``, e.g. one rate per budget); an
experiment's ``lr_source.<row>: <other row>`` (one row to another, not to be confused with
``lr_sources``) lets a row train at another row's rate (a control that differs from it only in
where its ranks go).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

# Where optimizer.lr comes from, the first set winning: the keys of ``lr_sources``.
LR_SOURCES = ("fixed", "chosen_on_validation", "published", "task_default")
READER = "${gelora_lr:}"  # optimizer.lr's value when the sources decide it
CHOSEN = "gelora_chosen_lr"


def _raw(node: Any, key: str) -> Any:
    """``node.key`` as written (an interpolation stays a string), ``None`` if absent."""
    child = node._get_node(key) if isinstance(node, DictConfig) else None
    return None if child is None else child._value()


def first_source(sources: DictConfig) -> str | None:
    """The first key of ``LR_SOURCES`` whose value in ``sources`` is set (not null), read as
    written, so a later source is never resolved; ``None`` if none is."""
    return next((name for name in LR_SOURCES if _raw(sources, name) is not None), None)


def _reads_sources(root: Any) -> bool:
    raw = _raw(root.optimizer, "lr")
    return isinstance(raw, str) and raw.replace(" ", "") == READER


def resolved_lr(*, _root_: Any) -> float:
    """``optimizer.lr``: the first source of ``lr_sources`` that is set (the ``gelora_lr``
    resolver).

    Raises:
        ValueError: no source is set, or the first set is not a finite number > 0 (one line
            naming its key).
    """
    sources = _root_.get("lr_sources")
    name = first_source(sources) if isinstance(sources, DictConfig) else None
    if name is None:
        raise ValueError(
            "optimizer.lr: every lr_sources entry is null; set optimizer.lr=<rate> or "
            "lr_sources.fixed=<rate>"
        )
    value = sources[name]
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not (number and math.isfinite(value) and value > 0):
        raise ValueError(
            f"optimizer.lr: lr_sources.{name} must be a finite number > 0, got {value!r}"
        )
    return float(value)


def _choice_needed(root: Any) -> bool:
    """Whether the run trains at a chosen rate: ``optimizer.lr`` names the choice itself, or
    reads the sources and ``chosen_on_validation`` is the first set. Otherwise a choice that
    was never made is shown as null, not an error (``optimizer.lr=X`` on the command line)."""
    raw = _raw(root.optimizer, "lr")
    if isinstance(raw, str) and CHOSEN in raw:
        return True
    sources = root.get("lr_sources")
    return (
        _reads_sources(root)
        and isinstance(sources, DictConfig)
        and first_source(sources) == "chosen_on_validation"
    )


def chosen_lr(row: str, task: str, key: str | None = None, *, _root_: Any) -> float | None:
    """``lr_choice.<source>.<task>[.<key>]`` with ``source = lr_source.<row>`` or ``row`` itself;
    ``None`` when no rate was chosen there and the run does not train at it.

    Raises:
        ValueError: no rate was chosen there and the run trains at it; the message names the
            key and the command that writes it.
    """
    source = OmegaConf.select(_root_, f"lr_source.{row}", default=None) or row
    where = f"lr_choice.{source}.{task}" + (f".{key}" if key else "")
    value = OmegaConf.select(_root_, where, default=None, throw_on_missing=False)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not _choice_needed(_root_):
        return None
    via = f" (row {row} trains at {source}'s rate: lr_source.{row})" if source != row else ""
    raise ValueError(
        f"optimizer.lr: no learning rate chosen at {where}{via}; write the experiment's rates "
        "with gelora-table <its lr grid folder> --select-lr conf/lr_choice/<experiment>.yaml, "
        "or set optimizer.lr=<rate>"
    )


def _given(overrides: Sequence[str], key: str) -> str | None:
    given = [o for o in overrides if o.lstrip("+~").startswith(f"{key}=")]
    return given[-1] if given else None


def lr_source(cfg: DictConfig, overrides: Sequence[str] = ()) -> str:
    """Where this config's ``optimizer.lr`` comes from, for the run's log: the command line
    (``overrides``), or the first set source of ``lr_sources`` (``first_source``, the order
    ``gelora_lr`` resolves in)."""
    given = _given(overrides, "optimizer.lr")
    if given:
        return f"the command line ({given})"
    if not _reads_sources(cfg):
        return f"a config file's optimizer.lr ({_raw(cfg.optimizer, 'lr')}), not lr_sources"
    name = first_source(cfg.lr_sources)
    raw = _raw(cfg.lr_sources, name) if name else None
    given = _given(overrides, f"lr_sources.{name}")
    if given:
        return f"the command line ({given})"
    if name == "fixed":
        return (
            "a config file's number (lr_sources.fixed: the experiment's, or a method= or "
            "debug= file's)"
        )
    if name == "chosen_on_validation":
        return f"chosen on validation (lr_sources.chosen_on_validation: {raw})"
    if name == "published":
        return f"a published per-task rate (lr_sources.published: {raw})"
    if name == "task_default" and isinstance(raw, str) and raw.strip() == "${task.lr}":
        return f"the task's default (task.lr of task={cfg.task.name})"
    return f"lr_sources.{name}: {raw}"


def register_lr_choice() -> None:
    """Register ``gelora_lr`` (``optimizer.lr``'s reader) and ``gelora_chosen_lr``."""
    OmegaConf.register_new_resolver("gelora_lr", resolved_lr, replace=True)
    OmegaConf.register_new_resolver(CHOSEN, chosen_lr, replace=True)
