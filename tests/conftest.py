"""Shared fixtures: tiny models built from configs (no download) and a fresh asset cache.

The whole test run uses a new, empty ``GELORA_CACHE`` (a temporary folder set before any test is
collected, so subprocesses inherit it): every extracted and converted asset is built again from
its archive, and a developer's warm ``~/.cache/gelora`` cannot hide a broken install step. Only
the downloaded archives are seeded from the developer's cache (each checked against its pinned
sha256; MPNet's, which no test reads, are not), and new downloads are handed back at the end, so
the network is used once per archive.
Under pytest-xdist each worker has a cache of its own, and one torch thread.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

from gelora import assets

_USER_CACHE: Path | None = None
_TEST_CACHE: Path | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _USER_CACHE, _TEST_CACHE
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # One torch thread per pytest-xdist worker (the workers share the cores), here and in
        # the runs the tests launch as subprocesses: torch's default is one thread per core.
        os.environ["OMP_NUM_THREADS"] = "1"
        os.environ["MKL_NUM_THREADS"] = "1"
        torch.set_num_threads(1)
    _USER_CACHE = assets.cache_root()
    _TEST_CACHE = Path(tempfile.mkdtemp(prefix="gelora-test-cache-"))
    # MPNet's five parts (400 MB) are left out: no test reads them (its tests use fake parts and
    # a tiny random MPNet), and each process of the run would hash and copy them.
    mpnet_parts = assets.CONVERTED_ASSETS["all-mpnet-base-v2"].sources
    assets.copy_verified_archives(
        _USER_CACHE / "downloads", _TEST_CACHE / "downloads", skip=mpnet_parts
    )
    os.environ[assets.CACHE_ENV_VAR] = str(_TEST_CACHE)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _TEST_CACHE is None or _USER_CACHE is None:
        return
    with contextlib.suppress(OSError):  # a read-only user cache: fetched again next time
        assets.copy_verified_archives(_TEST_CACHE / "downloads", _USER_CACHE / "downloads")
    shutil.rmtree(_TEST_CACHE, ignore_errors=True)
    os.environ[assets.CACHE_ENV_VAR] = str(_USER_CACHE)


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
def tiny_tokenizer(tmp_path) -> BertTokenizerFast:
    """A WordPiece tokenizer for tiny_bert's vocabulary: BERT's five special tokens, then w0-w94."""
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(95)]
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(words))
    return BertTokenizerFast(vocab_file=str(vocab))


@pytest.fixture
def token_batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(1, 100, (4, 12), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[2, 8:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}


@pytest.fixture(scope="module")
def hooks():
    """The docs site's hook module (``docs/hooks/gelora_docs.py``), loaded as mkdocs loads it."""
    path = Path(__file__).resolve().parents[1] / "docs" / "hooks" / "gelora_docs.py"
    spec = importlib.util.spec_from_file_location("gelora_docs_hooks", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)
