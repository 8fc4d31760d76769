"""Instruction tuning as a typed split: prompts (an instruction and an optional input) with the
response a model should give, and its seeded splitting and subsampling rules.

An ``InstructionSplit`` offers what the run's stages ask of a classification ``Split``: ``texts``
are the user turns (instruction, then the input on its own paragraph, as Alpaca's prompt puts
it), ``labels`` the responses, ``inputs()`` the user turns (the ID sample is drawn from them and
formatted with the model's chat template by ``gelora.stages.profile``), and ``fingerprint`` the
rows, so cleaning and the record's row fingerprints work unchanged.

Rows are put in a canonical order (sorted by content) before any seeded draw, and draws use
scikit-learn's seeded splits, as ``gelora.data.task_data`` does, so a split is the same rows on
every machine and for every training seed. The Alpaca loader is ``gelora.data.instruction_data``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from sklearn.model_selection import train_test_split

from gelora.data.draws import subsample_in_canonical_order


@dataclass(frozen=True)
class InstructionSplit:
    """One split of an instruction-tuning task, one row per example.

    Attributes:
        instructions: what the user asks.
        inputs_: the optional context of each instruction (``""`` when there is none).
        outputs: the response the model is trained to give (the only tokens with a loss).
    """

    instructions: list[str]
    inputs_: list[str]
    outputs: list[str]
    text_pairs = None  # single-segment inputs: the user turn

    def __post_init__(self) -> None:
        if not len(self.instructions) == len(self.inputs_) == len(self.outputs):
            raise ValueError("instructions, inputs and outputs differ in length")

    def __len__(self) -> int:
        return len(self.instructions)

    @property
    def texts(self) -> list[str]:
        """The user turns: the instruction, then its input after a blank line when it has one."""
        return [
            f"{instruction}\n\n{given}" if given.strip() else instruction
            for instruction, given in zip(self.instructions, self.inputs_, strict=True)
        ]

    @property
    def labels(self) -> list[str]:
        return self.outputs

    def inputs(self) -> list[str]:
        """One hashable input per row: the user turn the model reads."""
        return self.texts

    def subset(self, indices: Sequence[int]) -> InstructionSplit:
        return InstructionSplit(
            instructions=[self.instructions[i] for i in indices],
            inputs_=[self.inputs_[i] for i in indices],
            outputs=[self.outputs[i] for i in indices],
        )

    def fingerprint(self) -> str:
        """sha256 of the rows in order: equal fingerprints, equal rows (``Split.fingerprint``)."""
        rows = [self.instructions, self.inputs_, self.outputs]
        return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()


def canonical_order(split: InstructionSplit) -> list[int]:
    return sorted(
        range(len(split)), key=lambda i: (split.instructions[i], split.inputs_[i], split.outputs[i])
    )


def held_out(
    split: InstructionSplit, size: float | int, *, seed: int
) -> tuple[InstructionSplit, InstructionSplit]:
    """Seeded ``(rest, held out)`` split of rows in canonical order; ``size`` a fraction or a
    count."""
    order = canonical_order(split)
    rest, held = train_test_split(order, test_size=size, random_state=seed)
    return split.subset(sorted(rest)), split.subset(sorted(held))


def subsample_examples(
    split: InstructionSplit, max_samples: int | None, *, seed: int
) -> InstructionSplit:
    """At most ``max_samples`` rows drawn with ``seed`` from the canonical order (all if fewer)."""
    return subsample_in_canonical_order(
        split, max_samples, seed=seed, canonical_order=canonical_order
    )


def without_repeated_prompts(split: InstructionSplit) -> InstructionSplit:
    """The first example of every prompt (instruction and input): a repeated prompt could sit on
    both sides of a split, and its held-out loss would be a training loss."""
    first: dict[tuple[str, str], int] = {}
    for i, key in enumerate(zip(split.instructions, split.inputs_, strict=True)):
        first.setdefault(key, i)
    return split.subset(sorted(first.values()))
