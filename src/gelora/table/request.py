"""What one ``gelora-table`` command asks for, read once from its command line
(``gelora.table.cli.argument_parser``) into a frozen ``TableRequest``: the rest of the table
code reads its options from there, never from flags handed along one by one.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from gelora.table.paired import PairingRules

DEFAULT_REFERENCE = "lora"  # --versus when not given


@dataclass(frozen=True)
class TableRequest:
    """gelora-table's options (``--help`` says what each does)."""

    sweep_dir: Path
    out: Path | None = None  # --out; the sweep folder when not given (``out_dir``)
    with_dirs: tuple[Path, ...] = ()  # --with
    rows: str = "method"  # --rows: method or overrides
    columns: str | None = None  # --columns KEY
    plots: bool = True  # not --no-plots
    versus: str = DEFAULT_REFERENCE
    versus_given: bool = False  # --versus named a row, which must then be in the sweep
    rules: PairingRules = field(default_factory=PairingRules)  # --margin, --differing-plans
    placement: tuple[str, ...] | None = None  # --placement ROW:CONTROL; None: by the rows' names
    select_lr: Path | None = None  # --select-lr OUT.yaml
    shared_rate: tuple[str, ...] = ()  # --shared-rate NAME=ROW,ROW, read with the sweep
    size_for_mde: float | None = None  # --size-for-mde GOAL
    wandb: bool = False  # --wandb: also log what was written as a wandb run

    @property
    def out_dir(self) -> Path:
        return self.out or self.sweep_dir


def read_request(args: argparse.Namespace) -> TableRequest:
    """The parsed command line as a ``TableRequest``, checked before any sweep is read.

    Raises:
        ValueError: a margin that is not positive, an ``--out`` that is a file, or ``--wandb``
            beside an option that writes no table.
    """
    if args.margin is not None and not args.margin > 0:
        raise ValueError(f"--margin must be a positive number, got {args.margin}")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file, not a folder")
    if args.wandb and (args.select_lr is not None or args.size_for_mde is not None):
        raise ValueError(
            "--wandb logs the table's files; --select-lr and --size-for-mde write no table"
        )
    return TableRequest(
        sweep_dir=args.sweep_dir,
        out=args.out,
        with_dirs=tuple(args.with_dirs),
        rows=args.rows,
        columns=args.columns,
        plots=not args.no_plots,
        versus=args.versus or DEFAULT_REFERENCE,
        versus_given=args.versus is not None,
        rules=PairingRules(args.margin, args.differing_plans),
        placement=None if args.placement is None else tuple(args.placement),
        select_lr=args.select_lr,
        shared_rate=tuple(args.shared_rate),
        size_for_mde=args.size_for_mde,
        wandb=args.wandb,
    )
