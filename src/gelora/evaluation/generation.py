"""Greedy answers of a chat model to conversations, in batches.

Every conversation is rendered with the tokenizer's chat template and the generation prompt, so
the model reads exactly what it was trained on (``gelora.data.instruction_datamodule``). Batches
are padded on the left (a decoder continues from the last position of every row), built from
conversations of similar length, and decoded greedily (``do_sample=False``: the same answers on
every run) until the end-of-turn token or ``max_new_tokens``. Our LoRA layers are merged into
their base weights while generating (one matrix product per map instead of three: decoding is
many small steps) and unmerged afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from gelora.lora.inject import lora_layers, set_merged

Message = dict[str, str]  # {"role": "user" | "assistant" | "system", "content": ...}


@dataclass(frozen=True)
class GenerationSettings:
    """How answers are generated.

    Attributes:
        max_new_tokens: longest answer in tokens (FastChat's MT-Bench default is 1024; IFBench
            prompts ask for answers of up to a few hundred words).
        batch_size: conversations generated together.
        max_prompt_tokens: longer prompts keep their last tokens (the question's end and the
            generation prompt); ``None``: no limit.
    """

    max_new_tokens: int = 256
    batch_size: int = 8
    max_prompt_tokens: int | None = None


@torch.no_grad()
def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: Sequence[Sequence[Message]],
    settings: GenerationSettings = GenerationSettings(),
    *,
    description: str = "generating",
    progress: bool = True,
) -> list[str]:
    """One greedy answer per conversation (whose last message is the user's), in input order,
    decoded without special tokens and stripped of surrounding whitespace."""
    if not conversations:
        return []
    prompts = [
        tokenizer.apply_chat_template(list(c), tokenize=False, add_generation_prompt=True)
        for c in conversations
    ]
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    if settings.max_prompt_tokens is not None:
        encoded = [ids[-settings.max_prompt_tokens :] for ids in encoded]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    config = GenerationConfig(
        max_new_tokens=settings.max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    was_training = model.training
    model.eval()
    merge = any(not layer.merged for layer in lora_layers(model).values())
    if merge:
        set_merged(model, True)
    device = next(model.parameters()).device
    answers: list[str] = [""] * len(encoded)
    batches = range(0, len(order), settings.batch_size)
    try:
        for start in tqdm(batches, desc=description, disable=not progress, leave=False):
            index = order[start : start + settings.batch_size]
            width = max(len(encoded[i]) for i in index)
            ids = torch.full((len(index), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(index), width), dtype=torch.long)
            for row, i in enumerate(index):  # left padding
                ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
                mask[row, width - len(encoded[i]) :] = 1
            output = model.generate(
                input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=config
            )
            for row, i in enumerate(index):
                new_tokens = output[row, width:]
                answers[i] = tokenizer.decode(new_tokens, skip_special_tokens=True).strip()
    finally:
        if merge:
            set_merged(model, False)
        model.train(was_training)
    return answers
