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
recomputed and overwritten, never used (the checks and digests: ``gelora.cache_entries``, shared
with the gradient allocators' score cache).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gelora.cache_entries import key_digest, read_entry, write_entry
from gelora.cache_entries import token_ids_digest as token_ids_digest  # re-exported
from gelora.cache_entries import weights_digest as weights_digest  # re-exported
from gelora.geometry.id_profile import IDProfile

log = logging.getLogger(__name__)

# Bump when anything in the hidden-state pass, the pooling, the neighbour search or an estimator
# changes its output: every entry written before then becomes stale.
PROFILE_CODE_VERSION = 2  # 2: exact neighbours on any input (centred, certified tiles)


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
        return key_digest(self.fields())


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
    found = read_entry(path, key.fields(), PROFILE_CODE_VERSION, "profile", "ID profile")
    if found.payload is None:
        return CacheLookup(None, found.outcome)
    try:
        profile = profile_from_dict(found.payload)
    except (ValueError, KeyError, TypeError) as error:
        log.warning("ID profile cache entry %s is damaged (%s): recomputing", path, error)
        return CacheLookup(None, "corrupt")
    return CacheLookup(profile, "reused", found.entry.get("points"))


def store_profile(
    cache_dir: Path, key: ProfileKey, profile: IDProfile, *, points: dict[str, Any] | None = None
) -> Path:
    """Write the entry for ``key``; ``points`` (the sample's points, near-copies dropped) go with
    it so a run reusing the profile records them too."""
    extra = {"points": points} if points is not None else None
    return write_entry(
        entry_path(cache_dir, key),
        key.fields(),
        PROFILE_CODE_VERSION,
        "profile",
        profile.to_dict(),
        extra,
    )
