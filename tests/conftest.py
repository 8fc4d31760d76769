"""Shared fixtures: tiny models built from configs (no download) and a cached packaged model."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification


@pytest.fixture
def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=3,
    )
    return BertForSequenceClassification(config).eval()


@pytest.fixture
def token_batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(1, 100, (4, 12), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[2, 8:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}
