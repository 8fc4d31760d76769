"""Tokenised batches for Lightning: tokenise once, pad each batch to its own longest row."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from gelora.data.task_data import Split, TaskData
from gelora.data.token_cache import tokenize_cached


class TokenizedSplit(Dataset):
    """A split tokenised up front (fast tokenisers do thousands of rows per second).

    Pairs are encoded as the tokenizer's pair input (``[CLS] a [SEP] b [SEP]`` with segment ids
    for BERT); truncation then trims the longer of the two first.
    """

    def __init__(
        self,
        split: Split,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        cache_dir: Path | None = None,
    ):
        encoded, self.cache_outcome = tokenize_cached(
            tokenizer, split.texts, split.text_pairs, max_length, cache_dir
        )
        self.rows = [
            {**{key: encoded[key][i] for key in encoded}, "labels": label}
            for i, label in enumerate(split.labels)
        ]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        return self.rows[index]

    @property
    def lengths(self) -> list[int]:
        return [len(row["input_ids"]) for row in self.rows]


class LengthGroupedBatches(Sampler[list[int]]):
    """Random batches of similar length, to spend little compute on padding.

    As Hugging Face's ``LengthGroupedSampler``: shuffle, cut into mega-batches of
    ``mega_batches`` batches, sort each by length, cut into batches and shuffle the batches. Every
    epoch draws a new order from ``seed`` and the epoch number, so runs are reproducible.

    In a distributed run, every process draws the same order and takes every ``world``-th batch
    from its rank on, the tail cut so that all take the same number of steps (Lightning cannot
    put its ``DistributedSampler`` into a batch sampler: run with
    ``use_distributed_sampler=False``, as ``trainer=ddp`` does).
    """

    def __init__(self, lengths: list[int], batch_size: int, *, seed: int, mega_batches: int = 50):
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self.mega_batches = mega_batches
        self.epoch = 0
        self.yielded = 0  # batches handed out in the current epoch
        self._skip = 0  # batches to pass over when a resumed epoch restarts

    def state_dict(self) -> dict[str, int]:
        """Where training stands: the epoch being drawn and how many of its batches went out."""
        return {"epoch": self.epoch, "yielded": self.yielded}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume mid-epoch: the next ``__iter__`` redraws that epoch's order and skips ahead."""
        mid_epoch = 0 < state["yielded"] < len(self)
        self.epoch = state["epoch"] - 1 if mid_epoch else state["epoch"]
        self._skip = state["yielded"] if mid_epoch else 0

    @staticmethod
    def _rank_and_world() -> tuple[int, int]:
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size) // self._rank_and_world()[1]

    def __iter__(self):
        skip, self._skip = self._skip, 0
        self.yielded = 0
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        mega = self.batch_size * self.mega_batches
        batches = []
        for start in range(0, len(order), mega):
            chunk = sorted(order[start : start + mega], key=self.lengths.__getitem__, reverse=True)
            batches += [
                chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)
            ]
        rank, world = self._rank_and_world()
        shuffled = torch.randperm(len(batches), generator=generator).tolist()
        for index in shuffled[rank : len(shuffled) // world * world : world]:
            self.yielded += 1
            if self.yielded > skip:
                yield batches[index]


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` whose batch order survives a restart: Lightning saves its
    ``state_dict`` in checkpoints and restores it on resume, so a run killed mid-epoch goes on
    with the very batches it had not seen (same steps, same data as an uninterrupted run)."""

    def state_dict(self) -> dict[str, int]:
        return self.batch_sampler.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.batch_sampler.load_state_dict(state)


class LengthBatchedLoaders:
    """The loaders every task kind's datamodule builds from its own batch settings
    (``batch_size``, ``eval_batch_size``, ``seed``, ``group_by_length``, ``num_workers``), and
    the validation and test loaders of its ``task``: a kind's datamodule defines
    ``_eval_loader(name)`` for one split by its loader name (``validation``, ``test``,
    ``test_<extra>``) and inherits the rest."""

    task: TaskData
    batch_size: int
    eval_batch_size: int
    seed: int
    group_by_length: bool
    num_workers: int

    def length_grouped_train_loader(
        self, rows: Dataset, lengths: list[int], collate_fn
    ) -> ResumableDataLoader:
        """Training batches of similar length, reshuffled each epoch by ``seed`` and resumable
        mid-epoch; without length grouping, equal lengths make it a plain seeded shuffle."""
        grouped = lengths if self.group_by_length else [0] * len(lengths)
        batches = LengthGroupedBatches(grouped, self.batch_size, seed=self.seed)
        return ResumableDataLoader(
            rows, batch_sampler=batches, collate_fn=collate_fn, num_workers=self.num_workers
        )

    def length_ordered_loader(self, rows: Dataset, lengths: list[int], collate_fn) -> DataLoader:
        """Evaluation batches in length order: scores do not depend on order, padding does."""
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        size = self.eval_batch_size
        batches = [order[i : i + size] for i in range(0, len(order), size)]
        return DataLoader(
            rows, batch_sampler=batches, collate_fn=collate_fn, num_workers=self.num_workers
        )

    @property
    def test_split_names(self) -> list[str]:
        """The test dataloaders in order: ``test``, then the task's extra test splits."""
        return ["test", *self.task.extra_tests]

    def _eval_loader(self, name: str) -> DataLoader:
        raise NotImplementedError(f"{type(self).__name__} defines no _eval_loader")

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("validation")

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        """One loader per test split, in ``test_split_names`` order (one: the loader itself)."""
        keys = ["test", *(f"test_{name}" for name in self.task.extra_tests)]
        loaders = [self._eval_loader(key) for key in keys]
        return loaders[0] if len(loaders) == 1 else loaders


class TextClassificationDataModule(LengthBatchedLoaders, L.LightningDataModule):
    """Train/validation/test loaders with dynamic padding (``DataCollatorWithPadding``)."""

    def __init__(
        self,
        task: TaskData,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_length: int = 128,
        batch_size: int = 32,
        eval_batch_size: int = 128,
        num_workers: int = 0,
        seed: int = 0,
        group_by_length: bool = True,
        token_cache_dir: Path | None = None,
    ):
        super().__init__()
        self.token_cache_dir = token_cache_dir
        self.task = task
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.group_by_length = group_by_length
        self.collate = DataCollatorWithPadding(tokenizer, return_tensors="pt")
        self._splits: dict[str, TokenizedSplit] = {}

    def setup(self, stage: str | None = None) -> None:
        if not self._splits:
            splits = {"train": self.task.train, "validation": self.task.validation}
            splits |= {"test": self.task.test}
            splits |= {f"test_{name}": split for name, split in self.task.extra_tests.items()}
            for name, split in splits.items():
                self._splits[name] = TokenizedSplit(
                    split, self.tokenizer, self.max_length, self.token_cache_dir
                )

    @property
    def token_cache_outcomes(self) -> dict[str, str]:
        """Per split: ``computed``, ``reused``, ``recomputed (corrupt)`` or ``off``."""
        return {name: split.cache_outcome for name, split in self._splits.items()}

    def train_dataloader(self) -> DataLoader:
        split = self._splits["train"]
        return self.length_grouped_train_loader(split, split.lengths, self.collate)

    def _eval_loader(self, name: str) -> DataLoader:
        split = self._splits[name]
        return self.length_ordered_loader(split, split.lengths, self.collate)
