"""A sample of hidden states: pooled vectors (points) for every hidden-state layer.

Hugging Face models return ``L + 1`` hidden states with ``output_hidden_states=True``: the
embeddings output, then the output of each of the ``L`` blocks. GeLoRA compares the intrinsic
dimension of consecutive ones (the input and output of a block). How a sequence becomes points
is not stated in the paper, so it is a choice (``estimator.pooling``), recorded with every run:

- ``mean``: mean over the non-padding tokens (the sentence-transformers convention);
- ``cls``: the first token; at the embeddings output (layer 0) the first token's vector is the
  same for every input (token, position and segment embeddings only), so that layer is pooled
  by ``mean`` instead: the input block 0's [CLS] attends over;
- ``last``: the last non-padding token (a decoder's summary of the sequence), whichever side the
  tokenizer pads on;
- ``token``: ``tokens_per_text`` (k) distinct non-special, non-padding token positions per text,
  drawn with the seed (all of them when a text has fewer; ``HiddenSample.n_short_texts`` counts
  those texts). Positions are drawn once per batch and read at every layer, so layer ``l`` and
  ``l + 1`` hold the same tokens: the ID gap between them compares the same points. A text
  gives up to k points, rows grouped by text in input order (``HiddenSample.text_index``).

Collection is streamed: only the pooled ``(L + 1, points, width)`` result is kept, never a
batch's full ``(L + 1, batch, length, width)`` activations beyond the batch being processed.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

POOLINGS = ("mean", "cls", "last", "token")


@dataclass(frozen=True)
class HiddenSample:
    """Pooled hidden states and where each point came from.

    Attributes:
        states: ``(L + 1, P, width)`` float32 on the CPU; ``P = N`` except for ``token`` pooling.
        text_index: ``(P,)`` the text (index into the texts given) of each point, ascending.
        position: ``(P,)`` the token position each point was read at (``None`` for ``mean``).
        n_short_texts: texts that gave fewer than ``tokens_per_text`` points (``token`` only).
    """

    states: torch.Tensor
    text_index: torch.Tensor
    position: torch.Tensor | None
    n_short_texts: int = 0


def token_positions(
    attention_mask: torch.Tensor,
    k: int,
    generator: torch.Generator,
    special_tokens_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``min(k, n_i)`` distinct positions of row ``i``'s ``n_i`` non-special, non-padding tokens,
    drawn with ``generator`` (one ``randperm`` per row, in row order), ascending within a row.

    Returns ``(rows, positions)``, both ``(points,)`` long on the CPU, grouped by row.
    """
    usable = attention_mask.cpu().bool()
    if special_tokens_mask is not None:
        usable &= ~special_tokens_mask.cpu().bool()
    rows, positions = [], []
    for row, allowed in enumerate(usable):
        candidates = allowed.nonzero().flatten()
        chosen = candidates[torch.randperm(len(candidates), generator=generator)[:k]]
        chosen = chosen.sort().values
        rows.append(torch.full((len(chosen),), row, dtype=torch.long))
        positions.append(chosen)
    return torch.cat(rows), torch.cat(positions)


def last_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Each row's last non-padding position (left or right padding alike)."""
    length = attention_mask.shape[1]
    index = torch.arange(length, device=attention_mask.device).expand_as(attention_mask)
    return torch.where(attention_mask.bool(), index, -1).max(dim=1).values


def pool(
    hidden: torch.Tensor,
    attention_mask: torch.Tensor,
    pooling: str,
    generator: torch.Generator | None = None,
    selection: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """``(batch, length, width)`` states -> ``(points, width)`` vectors, padding masked out.

    ``token`` reads the ``(rows, positions)`` of ``selection`` (drawn once per batch by
    ``token_positions``, so every layer reads the same tokens); without one it draws a single
    non-padding token per row with ``generator``.
    """
    mask = attention_mask.to(hidden.dtype)
    if pooling == "mean":
        return (hidden * mask[..., None]).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1)
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last":
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        return hidden[rows, last_positions(attention_mask).to(hidden.device)]
    if pooling == "token":
        if selection is None:
            if generator is None:
                raise ValueError("token pooling needs a generator or a selection of positions")
            selection = token_positions(attention_mask, 1, generator)
        rows, positions = selection
        return hidden[rows.to(hidden.device), positions.to(hidden.device)]
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")


@torch.no_grad()
def collect_hidden_sample(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    pooling: str = "mean",
    tokens_per_text: int = 1,
    batch_size: int = 64,
    max_length: int = 128,
    seed: int = 0,
    progress: bool = True,
    text_pairs: Sequence[str] | None = None,
) -> HiddenSample:
    """Pooled hidden states of ``texts`` and where each point came from (``HiddenSample``).

    Runs the model in eval mode without gradients (dropout off), restoring its mode afterwards.
    Texts are batched in length order to waste little compute on padding; rows come back in the
    order given. ``text_pairs`` (pair tasks) are encoded with their texts, as in training, and
    pooled over both segments. ``token`` pooling leaves out the tokens the tokenizer adds
    (``return_special_tokens_mask``) and any other special token id but ``[UNK]`` (a chat
    template's markers, written into the text).
    """
    _check_collect_arguments(texts, pooling, tokens_per_text, text_pairs)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    pair_lengths = [len(p) for p in text_pairs] if text_pairs is not None else [0] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]) + pair_lengths[i])
    special_ids = _special_ids(tokenizer)
    pooled: torch.Tensor | None = None  # (L + 1, N, width) when every text gives one point
    chunks: list[torch.Tensor] = []  # token pooling: (L + 1, points, width) per batch
    text_index, positions = [], []
    n_short = 0
    last_logits_only = _last_logits_only(model)
    try:
        batches = range(0, len(order), batch_size)
        for start in tqdm(batches, desc="hidden states", disable=not progress, leave=False):
            index = order[start : start + batch_size]
            encoded = _encode(tokenizer, texts, text_pairs, index, max_length, pooling)
            special = encoded.pop("special_tokens_mask", None)
            mask = encoded["attention_mask"]
            rows, at = _batch_positions(
                pooling,
                encoded["input_ids"],
                mask,
                special,
                special_ids,
                tokens_per_text,
                generator,
            )
            if pooling == "token":
                n_short += int((torch.bincount(rows, minlength=len(index)) < tokens_per_text).sum())
            text_index.append(torch.tensor(index)[rows])
            if at is not None:
                positions.append(at.cpu())
            outputs = model(**encoded.to(device), output_hidden_states=True, **last_logits_only)
            layers = outputs.hidden_states
            vectors = _pool_layers(layers, encoded["attention_mask"], pooling, rows, at, generator)
            if pooling == "token":
                chunks.append(torch.stack(vectors))
                continue
            if pooled is None:
                pooled = torch.empty(len(layers), len(texts), layers[0].shape[-1])
            for layer, layer_vectors in enumerate(vectors):
                pooled[layer, torch.tensor(index)] = layer_vectors
    finally:
        model.train(was_training)
    source = torch.cat(text_index)
    where = torch.cat(positions) if positions else None
    if pooling != "token":
        assert pooled is not None
        return _in_input_order(pooled, source, where)
    # Points grouped by text in input order, positions ascending within a text.
    _, regroup = torch.sort(source, stable=True)
    states = torch.cat(chunks, dim=1)[:, regroup]
    return HiddenSample(states, source[regroup], where[regroup], n_short)


def _last_logits_only(model: PreTrainedModel) -> dict[str, int]:
    """A causal LM's vocabulary logits (batch x length x vocabulary) are not needed here: keep
    one position's (transformers' ``logits_to_keep``) so a large batch fits in memory."""
    takes = "logits_to_keep" in inspect.signature(model.forward).parameters
    return {"logits_to_keep": 1} if takes else {}


def _special_ids(tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    """The tokenizer's special token ids but ``[UNK]``: never a ``token`` pooling point."""
    return torch.tensor(
        sorted(set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}), dtype=torch.long
    )


def _encode(tokenizer, texts, text_pairs, index: list[int], max_length: int, pooling: str):
    """The texts at ``index`` (with their pairs) tokenised as one padded batch; ``token``
    pooling also asks for the special-tokens mask."""
    return tokenizer(
        [texts[i] for i in index],
        None if text_pairs is None else [text_pairs[i] for i in index],
        padding=True,
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
        return_special_tokens_mask=pooling == "token",
    )


def _pool_layers(
    layers: Sequence[torch.Tensor],
    mask: torch.Tensor,
    pooling: str,
    rows: torch.Tensor,
    at: torch.Tensor | None,
    generator: torch.Generator,
) -> list[torch.Tensor]:
    """Each layer's hidden states pooled into points, on the CPU (``cls`` pooling reads the
    embedding layer by its mean: its first token carries no context yet)."""
    vectors = []
    for layer, hidden in enumerate(layers):
        how = "mean" if pooling == "cls" and layer == 0 else pooling
        selection = (rows, at) if pooling == "token" else None
        vectors.append(pool(hidden.float(), mask, how, generator, selection).cpu())
    return vectors


def _check_collect_arguments(
    texts: Sequence[str], pooling: str, tokens_per_text: int, text_pairs: Sequence[str] | None
) -> None:
    """``collect_hidden_sample``'s arguments, refused with a ``ValueError`` naming the bad one."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if not isinstance(tokens_per_text, int) or tokens_per_text < 1:
        raise ValueError(f"tokens_per_text must be an integer >= 1, got {tokens_per_text!r}")
    if len(texts) == 0:
        raise ValueError("no texts to collect hidden states from")
    if text_pairs is not None and len(text_pairs) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(text_pairs)} text pairs")


def _batch_positions(
    pooling: str,
    input_ids: torch.Tensor,
    mask: torch.Tensor,
    special: torch.Tensor | None,
    special_ids: torch.Tensor,
    tokens_per_text: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A batch's pooled rows and the token position each reads (``None`` for mean pooling).
    ``token`` pooling draws them once, so every layer reads the same tokens, leaving out
    ``special`` tokens and ``special_ids``."""
    rows = torch.arange(len(mask))
    if pooling == "token":
        special = special.bool() | torch.isin(input_ids, special_ids)
        return token_positions(mask, tokens_per_text, generator, special)
    if pooling == "last":
        return rows, last_positions(mask)
    if pooling == "cls":
        return rows, torch.zeros(len(mask), dtype=torch.long)
    return rows, None


def _in_input_order(
    pooled: torch.Tensor, source: torch.Tensor, where: torch.Tensor | None
) -> HiddenSample:
    """One point per text: ``pooled`` is already in input order; the positions, collected in
    batch (length) order, are put in it too."""
    inverse = torch.empty_like(source)
    inverse[source] = torch.arange(len(source))
    where = None if where is None else where[inverse]
    return HiddenSample(pooled, torch.arange(len(source)), where)


def collect_hidden_states(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    **settings,
) -> torch.Tensor:
    """Pooled hidden states of ``texts``, ``(L + 1, points, width)`` float32 on the CPU: the
    ``states`` of ``collect_hidden_sample`` (which takes the same settings)."""
    return collect_hidden_sample(model, tokenizer, texts, **settings).states
