"""Windowed (question, context) batches for Lightning, and a split's span logits decoded into
answers.

Training batches carry each window's answer span (``start_positions``, ``end_positions``: the
QA head's loss); evaluation batches carry them too (the validation loss) and each window's index,
so that the module's logits can be decoded into one answer per question (``predictions``).
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from gelora.data.datamodule import LengthBatchedLoaders
from gelora.data.qa_data import QASplit
from gelora.data.qa_windows import Windows, best_answers, make_windows
from gelora.data.task_data import TaskData
from gelora.errors import ConfigError


class WindowRows(Dataset):
    """A split's windows as collator rows, built when asked for (the arrays stay compact)."""

    def __init__(self, windows: Windows, *, with_index: bool):
        self.windows = windows
        self.with_index = with_index

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict:
        return self.windows.row(index, with_targets=True, with_index=self.with_index)


class QADataModule(LengthBatchedLoaders, L.LightningDataModule):
    """Train/validation/test window loaders with dynamic padding, and span decoding per split.

    Args:
        doc_stride: tokens shared by consecutive windows of a context.
        max_question_length: questions are cut after this many tokens.
        n_best, max_answer_length: the span search of ``gelora.data.qa_windows.best_span``.
    """

    def __init__(
        self,
        task: TaskData,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_length: int = 384,
        doc_stride: int = 128,
        max_question_length: int = 64,
        n_best: int = 20,
        max_answer_length: int = 30,
        batch_size: int = 16,
        eval_batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        group_by_length: bool = True,
    ):
        super().__init__()
        if task.problem != "extractive_qa":
            raise ValueError(f"task {task.name} is {task.problem}, not extractive_qa")
        self.task = task
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.doc_stride = doc_stride
        self.max_question_length = max_question_length
        self.n_best = n_best
        self.max_answer_length = max_answer_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.group_by_length = group_by_length
        self.collate = DataCollatorWithPadding(tokenizer, return_tensors="pt")
        self.windows: dict[str, Windows] = {}

    def split(self, name: str) -> QASplit:
        """A split by its loader name: ``train``, ``validation``, ``test`` or ``test_<extra>``."""
        return self.task.splits()[name]

    def setup(self, stage: str | None = None) -> None:
        """Every split's windows, once.

        Raises:
            ConfigError: ``doc_stride`` leaves a window no room for context.
        """
        if self.windows:
            return
        for name, split in self.task.splits().items():
            try:
                self.windows[name] = make_windows(
                    split,
                    self.tokenizer,
                    max_length=self.max_length,
                    stride=self.doc_stride,
                    max_question_length=self.max_question_length,
                )
            except ValueError as error:
                raise ConfigError(str(error)) from error

    @property
    def token_cache_outcomes(self) -> dict[str, str]:
        """Windows are tokenised in every run: the token cache holds classification splits."""
        return {name: "off" for name in self.windows}

    def window_counts(self) -> dict[str, int]:
        return {name: len(windows) for name, windows in self.windows.items()}

    def train_dataloader(self) -> DataLoader:
        windows = self.windows["train"]
        rows = WindowRows(windows, with_index=False)
        return self.length_grouped_train_loader(rows, windows.lengths, self.collate)

    def _eval_loader(self, name: str) -> DataLoader:
        windows = self.windows[name]
        rows = WindowRows(windows, with_index=True)
        return self.length_ordered_loader(rows, windows.lengths, self.collate)

    def predictions(
        self,
        name: str,
        window_index: torch.Tensor,
        start_logits: torch.Tensor,
        end_logits: torch.Tensor,
    ) -> list[str]:
        """Each question's answer text in split ``name``, decoded from its windows' logits.

        Raises:
            ValueError: logits of fewer windows than the split has (a partial pass).
        """
        if len(window_index) != len(self.windows[name]):
            raise ValueError(
                f"{name}: logits of {len(window_index)} windows, the split has "
                f"{len(self.windows[name])}"
            )
        return best_answers(
            self.split(name),
            self.windows[name],
            window_index.numpy(),
            start_logits.numpy().astype(np.float32),
            end_logits.numpy().astype(np.float32),
            n_best=self.n_best,
            max_answer_length=self.max_answer_length,
        )
