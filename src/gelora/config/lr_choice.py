"""The learning rate a table row trains at, read from the rates chosen on validation.

``gelora-table <lr grid> --select-lr conf/lr_choice/<experiment>.yaml`` writes
``lr_choice.<row>.<task>`` (or ``lr_choice.<row>.<task>.<key>``, e.g. one rate per budget); an
experiment's ``lr_source.<row>: <other row>`` lets a row train at another row's rate (a control
that differs from it only in where its ranks go). Experiments read it as
``optimizer.lr: ${gelora_chosen_lr:${hydra:runtime.choices.method},${task.name}}``, and
``gelora-train --cfg job --resolve ...`` prints the number a run would use, and every run's log
says where its rate came from (``lr_source``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf


def chosen_lr(row: str, task: str, key: str | None = None, *, _root_: Any) -> float:
    """``lr_choice.<source>.<task>[.<key>]`` with ``source = lr_source.<row>`` or ``row`` itself.

    Raises:
        ValueError: no rate was chosen there; the message names the key and the command that
            writes it.
    """
    source = OmegaConf.select(_root_, f"lr_source.{row}", default=None) or row
    where = f"lr_choice.{source}.{task}" + (f".{key}" if key else "")
    value = OmegaConf.select(_root_, where, default=None, throw_on_missing=False)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    via = f" (row {row} trains at {source}'s rate: lr_source.{row})" if source != row else ""
    raise ValueError(
        f"optimizer.lr: no learning rate chosen at {where}{via}; write the experiment's rates "
        "with gelora-table <its lr grid folder> --select-lr conf/lr_choice/<experiment>.yaml, "
        "or set optimizer.lr=<rate>"
    )


def lr_source(cfg: DictConfig, overrides: Sequence[str] = ()) -> str:
    """Which of the places that may set ``optimizer.lr`` set this config's: the first of the
    command line (``overrides``), a config file (an experiment's, a ``method=`` or ``debug=``
    file's number), a rate chosen on validation (``gelora_chosen_lr``), another key it names
    (AdaLoRA's published per-task rates) and the task's default (``task.lr``), in the order of
    docs/experiments.md ("Where a learning rate comes from"). Hydra's merge decides the value;
    this names where it came from, for the run's log."""
    given = [o for o in overrides if o.lstrip("+~").startswith("optimizer.lr=")]
    if given:
        return f"the command line ({given[-1]})"
    node = cfg.optimizer._get_node("lr")
    raw = node._value() if node is not None else None
    if not isinstance(raw, str):
        return "a config file's optimizer.lr (the experiment's, or a method= or debug= file's)"
    if raw.strip() == "${task.lr}":
        return f"the task's default (task.lr of task={cfg.task.name})"
    if "gelora_chosen_lr" in raw:
        return f"chosen on validation (lr_choice, via {raw})"
    return f"the config's {raw}"


def register_lr_choice() -> None:
    OmegaConf.register_new_resolver("gelora_chosen_lr", chosen_lr, replace=True)
