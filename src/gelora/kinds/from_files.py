"""``task=from_files``: the user's files, read by the task kind of ``task.problem``.

This module holds no list of kinds: it looks ``task.problem`` up (``kind_of``) and hands the
files and the task's keys (a ``gelora.data.from_files.FileRequest``) to the kind's
``read_files``. The built-in readers live in ``gelora.data`` (``from_files``: classification,
regression, instruction; ``squad``: extractive QA), and each kind module names its own. A kind
of your own reads files too: give its ``TaskKind`` a ``read_files``, and point
``task.loader._target_`` at a ``load_from_files`` your module imports from here, so the config
check imports your module (and its kind registers) before the run reads the files.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gelora.data.from_files import FileRequest
from gelora.data.task_data import TaskData
from gelora.kinds.base import kind_of, kinds


def load_from_files(
    *,
    train_file: str | None = None,
    validation_file: str | None = None,
    test_file: str | None = None,
    text_fields: str | Sequence[str] = ("text",),
    label_field: str = "label",
    problem: str = "classification",
    label_names: Sequence[Any] | None = None,
    name: str = "from_files",
    split_seed: int = 0,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> TaskData:
    """Splits from the given files, read by ``problem``'s kind; missing validation/test splits
    carved from the train file.

    Raises:
        ValueError: no ``train_file``; ``problem`` names no registered kind, or one that reads no
            files (one line naming ``task.problem`` and the kinds there are); or what the kind's
            reader refuses.
    """
    if train_file is None:
        raise ValueError("task.train_file is required: add task.train_file=<path> to the command")
    try:
        kind = kind_of(problem)
    except KeyError:
        raise ValueError(
            f"task.problem must be one of {', '.join(kinds())}, got {problem!r}"
        ) from None
    if kind.read_files is None:
        readers = [name for name, other in kinds().items() if other.read_files is not None]
        raise ValueError(
            f"task.problem={problem}: that task kind reads no files (no TaskKind.read_files); "
            f"task=from_files reads {', '.join(readers)}"
        )
    request = FileRequest(
        files={"train": train_file, "validation": validation_file, "test": test_file},
        text_fields=[text_fields] if isinstance(text_fields, str) else list(text_fields),
        label_field=label_field,
        label_names=label_names,
        name=name,
        split_seed=split_seed,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
    )
    return kind.read_files(request)
