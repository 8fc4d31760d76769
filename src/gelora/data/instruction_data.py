"""The Alpaca-style demo set that ships offline, and the reader of Alpaca-format files: an
instruction-tuning task of ``gelora.data.instruction_split.InstructionSplit`` rows.
"""

from __future__ import annotations

import json
from pathlib import Path

from gelora.assets import asset_path
from gelora.data.instruction_split import InstructionSplit, held_out, without_repeated_prompts
from gelora.data.task_data import TaskData

ASSET = "alpaca-en-demo"
FILE = "alpaca_en_demo.json"
FILE_SHA256 = "bcc37c64db1a739a0789a1b81f251146fcf4459f903474bc9e3c21bbb5628318"


def read_alpaca_json(path: Path | str) -> InstructionSplit:
    """Every example of an Alpaca-format file (a JSON list of ``{"instruction", "input",
    "output"}``; ``input`` may be missing or empty), in file order.

    Raises:
        ValueError: not that format, or no example.
    """
    path = Path(path)
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        instructions = [str(row["instruction"]) for row in rows]
        inputs = [str(row.get("input") or "") for row in rows]
        outputs = [str(row["output"]) for row in rows]
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{path}: not an Alpaca-format JSON list ({error!r})") from error
    if not instructions:
        raise ValueError(f"{path}: no examples")
    return InstructionSplit(instructions, inputs, outputs)


def load_alpaca_demo(
    *, split_seed: int = 0, validation_size: int = 100, test_size: int = 100
) -> TaskData:
    """LLaMA-Factory's ``alpaca_en_demo.json`` (999 examples, 985 distinct prompts: the 14
    repeats are dropped): ``test_size`` and ``validation_size`` examples held out with
    ``split_seed``, the rest for training. The
    validation rows pick the checkpoint (lowest response loss); the test rows give the held-out
    loss of the chosen checkpoint; IFBench is scored after the test (``gelora.evaluation``)."""
    read = read_alpaca_json(asset_path(ASSET) / FILE)
    examples = without_repeated_prompts(read)
    rest, test = held_out(examples, test_size, seed=split_seed)
    train, validation = held_out(rest, validation_size, seed=split_seed)
    return TaskData(
        name="alpaca_demo",
        train=train,
        validation=validation,
        test=test,
        label_names=None,
        problem="instruction",
        notes=[
            f"dropped {len(read) - len(examples)} examples whose prompt repeats an earlier one",
            f"validation {len(validation)} and test {len(test)} examples held out of "
            f"{len(examples)} with split_seed {split_seed}",
        ],
    )
