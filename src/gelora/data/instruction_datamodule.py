"""Chat-formatted examples for a causal LM, with the loss on the response tokens only.

Each example is the tokenizer's own chat template (``apply_chat_template``) applied to a user
turn (the instruction and its input) and an assistant turn (the response). The prompt is the
template's rendering of the user turn with the generation prompt (``<|im_start|>assistant\\n``
for ChatML templates): exactly what the model reads at generation time. Labels are ``-100``
(ignored by the loss) on every prompt token and on whatever the template writes after the
response's end-of-turn token (a newline in ChatML); the response tokens and that end-of-turn token
keep their ids, so the model learns to answer and to stop (Alpaca and TRL's completion-only
training).

An example whose prompt fills ``max_length`` keeps no response token and adds nothing to the
loss: the datamodule drops it, and after ``setup`` its ``task`` holds the rows it trains and
evaluates on, with notes saying how many rows of which split were dropped (and how many kept
only the start of their response). The run records that task (sizes, notes, row fingerprints).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset
from transformers import PreTrainedTokenizerBase

from gelora.data.datamodule import LengthBatchedLoaders
from gelora.data.instruction_split import InstructionSplit
from gelora.data.task_data import TaskData
from gelora.errors import ConfigError

log = logging.getLogger(__name__)
IGNORE = -100  # the label Hugging Face's cross-entropy skips


def chat_prompt(tokenizer: PreTrainedTokenizerBase, user_turn: str) -> str:
    """The text a chat model reads before its answer: the template with the generation prompt."""
    messages = [{"role": "user", "content": user_turn}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _ids(tokenizer: PreTrainedTokenizerBase, messages: list[dict], **kwargs) -> list[int]:
    text = tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)
    # the template already holds every special token it wants (BOS included where it has one)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@dataclass(frozen=True)
class ChatExample:
    """One tokenised example: ``labels`` equal ``input_ids`` on the response, ``-100`` elsewhere."""

    input_ids: list[int]
    labels: list[int]
    response_cut: bool = False  # max_length cut response tokens away (some, or all)

    @property
    def n_response_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def encode_chat(
    tokenizer: PreTrainedTokenizerBase, user_turn: str, response: str, max_length: int
) -> ChatExample:
    """``user_turn`` and ``response`` in the chat template, the loss on the response only.

    The prompt (user turn with the generation prompt) must be a prefix of the whole
    conversation's tokens, which holds for templates that render turn by turn (ChatML, Llama,
    Mistral); the end-of-turn token is the tokenizer's ``eos_token`` (``<|im_end|>`` for
    SmolLM2's ChatML). Cut to ``max_length`` tokens from the right.

    Raises:
        ValueError: the prompt is not a prefix of the conversation (a template that rewrites
            earlier turns).
    """
    user = [{"role": "user", "content": user_turn}]
    prompt = _ids(tokenizer, user, add_generation_prompt=True)
    whole = _ids(tokenizer, [*user, {"role": "assistant", "content": response}])
    if whole[: len(prompt)] != prompt:
        raise ValueError("the chat template's prompt is not a prefix of the whole conversation")
    answer = whole[len(prompt) :]
    end = tokenizer.eos_token_id
    if end in answer:  # keep the end-of-turn token, mask what the template adds after it
        stop = answer.index(end) + 1
        answer_labels = answer[:stop] + [IGNORE] * (len(answer) - stop)
    else:
        answer_labels = list(answer)
    labels = [IGNORE] * len(prompt) + answer_labels
    cut = any(label != IGNORE for label in labels[max_length:])
    return ChatExample(whole[:max_length], labels[:max_length], response_cut=cut)


class ChatRows(Dataset):
    """A split's examples as collator rows (kept tokenised)."""

    def __init__(self, examples: list[ChatExample]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict:
        example = self.examples[index]
        return {"input_ids": example.input_ids, "labels": example.labels}

    @property
    def lengths(self) -> list[int]:
        return [len(e.input_ids) for e in self.examples]


def collate_right_padded(rows: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Rows padded on the right to the batch's longest; padding is masked and has label -100."""
    width = max(len(row["input_ids"]) for row in rows)
    ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        ids[i, :n] = torch.tensor(row["input_ids"])
        labels[i, :n] = torch.tensor(row["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class InstructionDataModule(LengthBatchedLoaders, L.LightningDataModule):
    """Train/validation/test loaders of chat-formatted examples, length-grouped for training.

    Examples whose response is cut away entirely by ``max_length`` (a prompt that fills it) would
    add nothing to the loss: ``setup`` drops them, counts them (``dropped``, per split), says so
    in the log, and replaces ``task`` by the rows kept, with a note; the run records that task.
    """

    def __init__(
        self,
        task: TaskData,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_length: int = 256,
        batch_size: int = 8,
        eval_batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        group_by_length: bool = True,
    ):
        super().__init__()
        if task.problem != "instruction":
            raise ValueError(f"task {task.name} is {task.problem}, not instruction")
        if tokenizer.chat_template is None:
            raise ConfigError("instruction tuning needs a tokenizer with a chat template")
        self.task = task
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.group_by_length = group_by_length
        self.rows: dict[str, ChatRows] = {}
        self.dropped: dict[str, int] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.rows:
            return
        kept: dict[str, list[int]] = {}
        cut: dict[str, int] = {}
        for name, split in self.task.splits().items():
            examples = self.encode(split)
            kept[name] = [i for i, e in enumerate(examples) if e.n_response_tokens > 0]
            self.dropped[name] = len(examples) - len(kept[name])
            cut[name] = sum(examples[i].response_cut for i in kept[name])
            if not kept[name]:
                raise ConfigError(
                    f"task.max_length={self.max_length} leaves no response token in any {name} "
                    "example"
                )
            self.rows[name] = ChatRows([examples[i] for i in kept[name]])
        self.task = self._rows_used(kept, cut)

    def _rows_used(self, kept: dict[str, list[int]], cut: dict[str, int]) -> TaskData:
        """The task without the dropped rows, with notes (also logged) on what ``max_length``
        did; the task itself when it dropped and cut nothing."""
        task, limit = self.task, f"task.max_length={self.max_length}"
        splits = task.splits()
        notes = []
        if any(self.dropped.values()):
            counts = ", ".join(
                f"{n} of {len(splits[name])} {name}" for name, n in self.dropped.items() if n
            )
            notes.append(
                f"dropped {counts} examples: {limit} leaves no token of their response "
                "(the prompt fills it)"
            )
        if any(cut.values()):
            counts = ", ".join(f"{n} of {len(kept[name])} {name}" for name, n in cut.items() if n)
            notes.append(f"{limit} cuts the response short in {counts} examples kept")
        for note in notes:
            log.info(note)
        if not notes:
            return task

        def used(name: str) -> InstructionSplit:
            split = splits[name]
            return split.subset(kept[name]) if self.dropped[name] else split

        return replace(
            task,
            train=used("train"),
            validation=used("validation"),
            test=used("test"),
            extra_tests={n: used(f"test_{n}") for n in task.extra_tests},
            notes=[*task.notes, *notes],
        )

    def encode(self, split: InstructionSplit) -> list[ChatExample]:
        return [
            encode_chat(self.tokenizer, text, response, self.max_length)
            for text, response in zip(split.texts, split.outputs, strict=True)
        ]

    @property
    def token_cache_outcomes(self) -> dict[str, str]:
        """Chat examples are tokenised in every run (seconds): the token cache holds texts."""
        return {name: "off" for name in self.rows}

    def _collate(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        return collate_right_padded(rows, self.tokenizer.pad_token_id)

    def train_dataloader(self) -> DataLoader:
        rows = self.rows["train"]
        return self.length_grouped_train_loader(rows, rows.lengths, self._collate)

    def _eval_loader(self, name: str) -> DataLoader:
        """Length-ordered batches: the token-weighted loss does not depend on order."""
        rows = self.rows[name]
        return self.length_ordered_loader(rows, rows.lengths, self._collate)
