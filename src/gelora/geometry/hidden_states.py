"""A sample of hidden states: one vector per example for every hidden-state layer.

Hugging Face models return ``L + 1`` hidden states with ``output_hidden_states=True``: the
embeddings output, then the output of each of the ``L`` blocks. GeLoRA compares the intrinsic
dimension of consecutive ones (the input and output of a block). How a sequence becomes one
vector is not stated in the paper, so it is a choice, recorded with every run:

- ``mean``: mean over the non-padding tokens (the sentence-transformers convention);
- ``cls``: the first token; at the embeddings output (layer 0) the first token's vector is the
  same for every input (token, position and segment embeddings only), so that layer is pooled
  by ``mean`` instead: the input block 0's [CLS] attends over;
- ``token``: one non-padding token per example, drawn with the seed.

Collection is streamed: only the pooled ``(L + 1, N, width)`` result is kept, never a batch's
full ``(L + 1, batch, length, width)`` activations beyond the batch being processed.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

POOLINGS = ("mean", "cls", "token")


def pool(
    hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str, generator: torch.Generator
) -> torch.Tensor:
    """``(batch, length, width)`` states -> ``(batch, width)`` vectors, padding masked out."""
    mask = attention_mask.to(hidden.dtype)
    if pooling == "mean":
        return (hidden * mask[..., None]).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1)
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "token":
        lengths = attention_mask.sum(dim=1).cpu()
        positions = (torch.rand(len(lengths), generator=generator) * lengths).long()
        # Padding may sit on either side: pick the position-th non-padding token of each row.
        token_index = torch.stack(
            [
                row.nonzero().flatten()[p]
                for row, p in zip(attention_mask.cpu(), positions, strict=False)
            ]
        ).to(hidden.device)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), token_index]
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")


@torch.no_grad()
def collect_hidden_states(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    pooling: str = "mean",
    batch_size: int = 64,
    max_length: int = 128,
    seed: int = 0,
    progress: bool = True,
    text_pairs: Sequence[str] | None = None,
) -> torch.Tensor:
    """Pooled hidden states of ``texts``, shape ``(L + 1, N, width)``, float32 on the CPU.

    Runs the model in eval mode without gradients (dropout off), restoring its mode afterwards.
    Texts are batched in length order to waste little compute on padding; rows come back in the
    order given. ``text_pairs`` (pair tasks) are encoded with their texts, as in training, and
    pooled over both segments.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if len(texts) == 0:
        raise ValueError("no texts to collect hidden states from")
    if text_pairs is not None and len(text_pairs) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(text_pairs)} text pairs")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    pair_lengths = [len(p) for p in text_pairs] if text_pairs is not None else [0] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]) + pair_lengths[i])
    pooled: torch.Tensor | None = None
    # A causal LM's vocabulary logits (batch x length x vocabulary) are not needed here: keep one
    # position's (transformers' ``logits_to_keep``) so a large batch fits in memory.
    takes = "logits_to_keep" in inspect.signature(model.forward).parameters
    last_logits_only = {"logits_to_keep": 1} if takes else {}
    try:
        batches = range(0, len(order), batch_size)
        for start in tqdm(batches, desc="hidden states", disable=not progress, leave=False):
            index = order[start : start + batch_size]
            encoded = tokenizer(
                [texts[i] for i in index],
                None if text_pairs is None else [text_pairs[i] for i in index],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(device)
            outputs = model(**encoded, output_hidden_states=True, **last_logits_only)
            layers = outputs.hidden_states
            if pooled is None:
                pooled = torch.empty(len(layers), len(texts), layers[0].shape[-1])
            rows = torch.tensor(index)
            for layer, hidden in enumerate(layers):
                how = "mean" if pooling == "cls" and layer == 0 else pooling
                vectors = pool(hidden.float(), encoded["attention_mask"], how, generator)
                pooled[layer, rows] = vectors.cpu()
    finally:
        model.train(was_training)
    assert pooled is not None
    return pooled
