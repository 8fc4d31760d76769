"""ID profiles computed once and shared by every job that asks for the same one.

A profile is a pure function of the model's weights, the sampled inputs (their token ids, after
truncation to ``max_length``), the pooling (and its tokens per text), the near-copy rule, the
estimator and its settings, the seed of its resamples, the device and batch size of the
hidden-state pass, and the estimation code. The
cache key is a sha256 over all of those (``ProfileKey``), so a job of a sweep that differs only in
its method or training seed finds the profile another job computed, and any change to one of
them misses.

Entries live under ``$GELORA_CACHE/id_profiles/<key>.json``, written atomically (a reader sees a
whole entry or none; two jobs computing the same profile at once both write the same content).
Each entry carries its key, the code version and a sha256 of its profile: an entry that does not
parse, whose key or version differs (stale), or whose checksum fails (corrupt) is reported,
recomputed and overwritten, never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from gelora.atomic import write_json_atomic
from gelora.geometry.id_profile import IDProfile

log = logging.getLogger(__name__)

# Bump when anything in the hidden-state pass, the pooling, the neighbour search or an estimator
# changes its output: every entry written before then becomes stale.
PROFILE_CODE_VERSION = 2  # 2: exact neighbours on any input (centred, certified tiles)


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


@dataclass(frozen=True)
class ProfileKey:
    """Everything an ID profile depends on; ``digest`` is the cache key.

    ``tokens_per_text`` (set for ``token`` pooling only) and ``dedup`` (``<rule>:<threshold>``,
    unset for ``none``) enter the key only when set, so the keys of ``mean`` and ``cls`` profiles
    without dedup, and their entries, are those written before the two existed; a ``token``
    profile always carries ``tokens_per_text``, so no entry of the old token pooling (one token
    per layer, drawn afresh at each) matches one now.
    """

    weights: str
    token_ids: str
    pooling: str
    estimator: str
    n_resamples: int
    resampling: str
    resample_fraction: float
    seed: int
    batch_size: int
    device: str
    code_version: int = PROFILE_CODE_VERSION
    tokens_per_text: int | None = None
    dedup: str | None = None

    def fields(self) -> dict[str, Any]:
        """The key as stored and hashed: every field, but the optional ones only when set."""
        optional = ("tokens_per_text", "dedup")
        return {k: v for k, v in asdict(self).items() if k not in optional or v is not None}

    @property
    def digest(self) -> str:
        text = json.dumps(self.fields(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def _profile_checksum(profile: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(profile, sort_keys=True).encode()).hexdigest()


def profile_from_dict(data: dict[str, Any]) -> IDProfile:
    from gelora.geometry.id_profile import LayerID

    layers = tuple(
        LayerID(
            layer=int(layer["layer"]),
            dimension=float(layer["dimension"]),
            n_used=int(layer["n_used"]),
            n_dropped=int(layer["n_dropped"]),
            resampled=tuple(float(d) for d in layer["resampled"]),
        )
        for layer in data["layers"]
    )
    return IDProfile(layers=layers, estimator=data["estimator"], resampling=data["resampling"])


@dataclass(frozen=True)
class CacheLookup:
    """A profile read from the cache, or why none was used (``miss``, ``stale``, ``corrupt``);
    ``points``: what the entry says about the sample's points (``None`` in older entries)."""

    profile: IDProfile | None
    outcome: str
    points: dict[str, Any] | None = None


def entry_path(cache_dir: Path, key: ProfileKey) -> Path:
    return Path(cache_dir) / f"{key.digest}.json"


def load_cached_profile(cache_dir: Path, key: ProfileKey) -> CacheLookup:
    """The cached profile for ``key``, checked; never a stale or damaged one."""
    path = entry_path(cache_dir, key)
    if not path.is_file():
        return CacheLookup(None, "miss")
    try:
        entry = json.loads(path.read_text())
        if entry["key"] != key.fields() or entry["code_version"] != PROFILE_CODE_VERSION:
            log.warning("ID profile cache entry %s is stale (other key or code): recomputing", path)
            return CacheLookup(None, "stale")
        if _profile_checksum(entry["profile"]) != entry["profile_sha256"]:
            raise ValueError("checksum mismatch")
        return CacheLookup(profile_from_dict(entry["profile"]), "reused", entry.get("points"))
    except (ValueError, KeyError, TypeError) as error:
        log.warning("ID profile cache entry %s is damaged (%s): recomputing", path, error)
        return CacheLookup(None, "corrupt")


def store_profile(
    cache_dir: Path, key: ProfileKey, profile: IDProfile, *, points: dict[str, Any] | None = None
) -> Path:
    """Write the entry for ``key``; ``points`` (the sample's points, near-copies dropped) go with
    it so a run reusing the profile records them too."""
    payload = profile.to_dict()
    entry = {
        "key": key.fields(),
        "code_version": PROFILE_CODE_VERSION,
        "profile": payload,
        "profile_sha256": _profile_checksum(payload),
    }
    if points is not None:
        entry["points"] = points
    return write_json_atomic(entry_path(cache_dir, key), entry)
