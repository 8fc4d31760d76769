"""The learning rate a table row trains at, read from the rates chosen on validation.

``gelora-table <lr grid> --select-lr conf/lr_choice/<experiment>.yaml`` writes
``lr_choice.<row>.<task>`` (or ``lr_choice.<row>.<task>.<key>``, e.g. one rate per budget); an
experiment's ``lr_source.<row>: <other row>`` lets a row train at another row's rate (a control
that differs from it only in where its ranks go). Experiments read it as
``optimizer.lr: ${gelora_chosen_lr:${hydra:runtime.choices.method},${task.name}}``, and
``gelora-train --cfg job --resolve ...`` prints the number a run would use.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf


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


def register_lr_choice() -> None:
    OmegaConf.register_new_resolver("gelora_chosen_lr", chosen_lr, replace=True)
