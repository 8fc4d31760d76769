"""Tokenised splits computed once per tokenizer and setting, and shared by every job.

A split's token ids are a pure function of the tokenizer (its whole definition: normaliser,
pre-tokeniser, vocabulary, post-processor), ``max_length`` and the split's texts. The cache key is
a sha256 over the three; entries are ``.npz`` files (flat arrays and row offsets, no pickles)
under ``$GELORA_CACHE/tokenized/``, written atomically. An entry that does not load or does not
fit its split is recomputed and overwritten, never used.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from gelora.atomic import atomic_file

log = logging.getLogger(__name__)

TOKEN_CACHE_VERSION = 1


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of the tokenizer's definition (a fast tokenizer's JSON), with its class name.

    The backend's ``truncation`` and ``padding`` are left out: every call sets them afresh (the
    cache key holds ``max_length``), so they record only the previous call.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        definition = json.loads(backend.to_str())
        definition.pop("truncation", None)
        definition.pop("padding", None)
        definition = json.dumps(definition, sort_keys=True)
    else:  # a slow tokenizer: its vocabulary and special tokens
        definition = json.dumps(
            [sorted(tokenizer.get_vocab().items()), tokenizer.all_special_tokens]
        )
    text = f"{type(tokenizer).__name__}|{definition}"
    return hashlib.sha256(text.encode()).hexdigest()


def token_cache_key(tokenizer, max_length: int, texts, text_pairs) -> str:
    digest = hashlib.sha256()
    digest.update(
        f"v{TOKEN_CACHE_VERSION}|{tokenizer_fingerprint(tokenizer)}|{max_length}".encode()
    )
    digest.update(
        json.dumps([list(texts), None if text_pairs is None else list(text_pairs)]).encode()
    )
    return digest.hexdigest()


def _to_arrays(encoded: dict[str, list[list[int]]]) -> dict[str, np.ndarray]:
    lengths = [len(ids) for ids in encoded["input_ids"]]
    arrays = {"offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)}
    for key, rows in encoded.items():
        arrays[key] = np.fromiter((v for row in rows for v in row), dtype=np.int64)
    return arrays


def _from_arrays(arrays: dict[str, np.ndarray], n_rows: int) -> dict[str, list[list[int]]]:
    offsets = arrays["offsets"]
    if len(offsets) != n_rows + 1:
        raise ValueError(f"{len(offsets) - 1} rows cached, the split has {n_rows}")
    encoded = {}
    for key, flat in arrays.items():
        if key == "offsets":
            continue
        if len(flat) != offsets[-1]:
            raise ValueError(f"{key}: {len(flat)} values for {offsets[-1]} tokens")
        values = flat.tolist()
        encoded[key] = [values[a:b] for a, b in itertools.pairwise(offsets.tolist())]
    return encoded


def tokenize_cached(
    tokenizer, texts, text_pairs, max_length: int, cache_dir: Path | None
) -> tuple[dict[str, list[list[int]]], str]:
    """The tokenizer's output for the split (lists of ids per key), and ``computed``, ``reused``
    or ``recomputed (corrupt)``; ``off`` without ``cache_dir``."""

    def tokenize() -> dict[str, Any]:
        encoded = tokenizer(list(texts), text_pairs, truncation=True, max_length=max_length)
        return {key: list(encoded[key]) for key in encoded}

    if cache_dir is None:
        return tokenize(), "off"
    path = Path(cache_dir) / f"{token_cache_key(tokenizer, max_length, texts, text_pairs)}.npz"
    outcome = "computed"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                return _from_arrays(dict(stored), len(texts)), "reused"
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            log.warning("token cache entry %s is damaged (%s): recomputing", path, error)
            outcome = "recomputed (corrupt)"
    encoded = tokenize()
    with atomic_file(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **_to_arrays(encoded))
    return encoded, outcome
