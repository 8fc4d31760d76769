"""Placement effects: each rank allocator against its own shuffled control (issue 30).

An allocator's row against uniform LoRA at the same budget is its total effect (``--versus
lora``); against its own shuffle (the same per-block ranks permuted across blocks with the seed,
so the same ranks and parameters in other places) it is the effect of where the ranks go. The
pairs are named on the command line (``--placement ROW:CONTROL``, repeatable) or, by default,
by the rows' names: ``<row>_shuffled`` is ``<row>``'s own shuffle, and ``shuffled`` is
``gelora_budget``'s (``conf/method/``). Each pair gets the statistics of every paired section
(``gelora.table.paired_tables.paired_section``), with the control as the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gelora.table.paired import EVERY_PAIR, PairingRules
from gelora.table.paired_tables import PairedSection, paired_markdown, paired_section
from gelora.table.sweep_runs import SweepRun

SHUFFLE_SUFFIX = "_shuffled"
NAMED_CONTROLS = {"shuffled": "gelora_budget"}  # a control whose name does not say its row


@dataclass(frozen=True)
class Placement:
    """One allocator row, its own shuffled control, and their paired differences."""

    row: str
    control: str
    section: PairedSection


def placement_pairs(methods: Sequence[str], given: Sequence[str] | None) -> list[tuple[str, str]]:
    """``(row, control)`` pairs: ``given`` as ``ROW:CONTROL``, else named by the rows.

    Raises:
        ValueError: a given pair is not ``ROW:CONTROL``, or names a row the sweep lacks.
    """
    present = set(methods)
    if not given:
        by_suffix = [
            (m.removesuffix(SHUFFLE_SUFFIX), m) for m in methods if m.endswith(SHUFFLE_SUFFIX)
        ]
        named = [(row, control) for control, row in NAMED_CONTROLS.items() if control in present]
        return [(row, control) for row, control in [*named, *by_suffix] if row in present]
    pairs = []
    for text in given:
        row, colon, control = text.partition(":")
        if not colon or not row or not control:
            raise ValueError(f"--placement {text!r}: give ROW:CONTROL, e.g. fisher:fisher_shuffled")
        missing = [name for name in (row, control) if name not in present]
        if missing:
            raise ValueError(f"--placement {text}: no row {missing[0]!r} in this sweep")
        pairs.append((row, control))
    return pairs


def placement_effects(
    runs: Sequence[SweepRun],
    pairs: Sequence[tuple[str, str]],
    rules: PairingRules = EVERY_PAIR,
) -> list[Placement]:
    """Each pair's paired differences, row minus control, on the pair's own runs, judged by the
    same ``rules`` as the section against the reference."""
    return [
        Placement(
            row,
            control,
            paired_section([r for r in runs if r.method in (row, control)], control, rules),
        )
        for row, control in pairs
        if any(r.method == control for r in runs)
    ]


def placement_markdown(placements: Sequence[Placement]) -> str:
    """A section per allocator: its row minus its own shuffle, with the full statistics."""
    if not placements:
        return ""
    parts = [
        "# Placement effects: each allocator against its own shuffle\n\n"
        "The same per-block ranks and parameters, permuted across blocks with the seed: a "
        "difference here is where the ranks go, not how many there are.\n"
    ]
    for placement in placements:
        body = paired_markdown(placement.section).replace(
            f"## Paired differences versus {placement.control}",
            f"## {placement.row} against its own shuffle ({placement.control})",
            1,
        )
        parts.append(body)
    return "\n".join(parts)
