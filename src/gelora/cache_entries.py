"""Checked JSON cache entries: what the ID profile cache and the score cache of the allocators
that read the model share (``gelora.stages.profile_cache``, ``gelora.ranks.scoring``).

An entry is one JSON file ``<cache folder>/<key digest>.json`` written atomically, holding its
key's fields, its code version, a payload and a sha256 of that payload (``<payload>_sha256``).
Reading it back checks all three: an entry that does not parse, whose key or code version
differs (``stale``) or whose checksum fails (``corrupt``) is reported and never used; its
computation runs again and overwrites it. The digests here name what a cached result depends on:
a model's weights, token ids.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gelora.atomic import write_json_atomic

log = logging.getLogger(__name__)


def weights_digest(model: torch.nn.Module, skip_prefixes: Sequence[str] = ()) -> str:
    """sha256 of every parameter and buffer (name, dtype, shape, bytes) outside ``skip_prefixes``
    (the new head, which the hidden states never pass through)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if any(name == p or name.startswith(f"{p}.") for p in skip_prefixes):
            continue
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def token_ids_digest(token_ids: Iterable[Sequence[int]]) -> str:
    """sha256 of the sampled inputs as the model sees them: token ids, in sample order."""
    digest = hashlib.sha256()
    for ids in token_ids:
        digest.update(json.dumps(list(ids)).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def key_digest(fields: dict[str, Any]) -> str:
    """The cache key of ``fields`` (an entry's file name)."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def payload_checksum(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class EntryLookup:
    """An entry's payload and the whole entry (its extra fields), or why none was used:
    ``outcome`` is ``reused``, ``miss``, ``stale`` or ``corrupt``."""

    payload: Any
    outcome: str
    entry: dict[str, Any] | None = None


def read_entry(
    path: Path, key: dict[str, Any], code_version: int, payload_field: str, what: str
) -> EntryLookup:
    """The checked payload of the entry at ``path`` for ``key``; never a stale or damaged one
    (``what`` names the cache in the warning)."""
    if not path.is_file():
        return EntryLookup(None, "miss")
    try:
        entry = json.loads(path.read_text())
        if entry["key"] != key or entry["code_version"] != code_version:
            log.warning("%s cache entry %s is stale (other key or code): recomputing", what, path)
            return EntryLookup(None, "stale")
        if payload_checksum(entry[payload_field]) != entry[f"{payload_field}_sha256"]:
            raise ValueError("checksum mismatch")
        return EntryLookup(entry[payload_field], "reused", entry)
    except (ValueError, KeyError, TypeError) as error:
        log.warning("%s cache entry %s is damaged (%s): recomputing", what, path, error)
        return EntryLookup(None, "corrupt")


def write_entry(
    path: Path,
    key: dict[str, Any],
    code_version: int,
    payload_field: str,
    payload: Any,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the entry at ``path`` atomically; ``extra`` fields go with it unchecked."""
    entry = {
        "key": key,
        "code_version": code_version,
        payload_field: payload,
        f"{payload_field}_sha256": payload_checksum(payload),
        **(extra or {}),
    }
    return write_json_atomic(path, entry)


def cache_outcome(lookup: EntryLookup) -> str:
    """What a record says: ``computed`` (a miss), ``reused``, ``recomputed (stale|corrupt)``."""
    return {"miss": "computed", "reused": "reused"}.get(
        lookup.outcome, f"recomputed ({lookup.outcome})"
    )
