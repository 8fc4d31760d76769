"""Stage ``estimate_profile``: hidden states of a training sample, then one ID per layer.

The sample is ``estimator.n_samples`` distinct training inputs drawn with the seed (all of them
when the task has fewer: the number is an upper bound), passed through the frozen pretrained
model (an instruction-tuning task's prompts formatted with the model's chat template, as it
reads them) and pooled into points (``estimator.pooling``, ``gelora.geometry.hidden_states``);
near-copies are dropped if ``estimator.dedup`` asks (``gelora.geometry.near_duplicates``); the
estimator (TwoNN by default) runs on every hidden-state layer and on resamples of the points for
error bars (``gelora.geometry.id_profile``).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
from omegaconf import DictConfig
from sklearn.base import BaseEstimator

from gelora.assets import cache_root
from gelora.data.task_data import TaskData
from gelora.errors import ConfigError
from gelora.geometry.hidden_states import HiddenSample, collect_hidden_sample
from gelora.geometry.id_profile import IDProfile, check_block_size, estimate_id_profile
from gelora.geometry.near_duplicates import near_duplicates
from gelora.kinds import kind_of
from gelora.reporting.console import format_id_profile
from gelora.stages.backbone import Backbone
from gelora.stages.profile_cache import (
    ProfileKey,
    entry_path,
    load_cached_profile,
    store_profile,
    token_ids_digest,
    weights_digest,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
MIN_ID_SAMPLE = 3  # TwoNN needs a first and a second neighbour, and two kept ratios


@dataclass(frozen=True)
class IDSample:
    """How many training inputs the ID estimate uses: ``requested`` (``estimator.n_samples``,
    a number or ``all``), ``used``, and a ``note`` when fewer were used than asked."""

    requested: int | str
    used: int
    note: str | None = None


@dataclass(frozen=True)
class EstimatorSettings:
    """How the hidden-state sample is pooled and how the estimate is resampled (``estimator``).

    Attributes:
        sample_seed: draws the sample, the token pooling and the resamples; fixed, not the
            training seed, so a seed sweep shares one profile.
        tokens_per_text: points per text under ``token`` pooling (k seeded non-special tokens).
        dedup: ``none`` (the paper) or ``near``: drop near-copies before estimating, joined
            below ``dedup_threshold`` x the median nearest-neighbour distance at layer 0.
    """

    pooling: str = "mean"
    tokens_per_text: int = 1
    dedup: str = "none"
    dedup_threshold: float = 0.1
    batch_size: int = 128
    n_resamples: int = 5
    resampling: str = "subsample"
    resample_fraction: float = 0.5
    sample_seed: int = 0

    def estimate(
        self, hidden: torch.Tensor, estimator: BaseEstimator, *, progress: bool = True
    ) -> IDProfile:
        """The ID profile of ``(L + 1, N, width)`` hidden states under these resampling
        settings, the resamples drawn with ``sample_seed`` (``estimate_id_profile``).

        Raises:
            ConfigError: the resampling settings leave a resample too few points (blocks of a
                sample that near-copy removal or ``n_samples=all`` made smaller than asked).
        """
        if self.resampling == "blocks" and self.n_resamples > 1:
            try:  # before any estimate, as a config error (the run's command names the keys)
                check_block_size(hidden.shape[1], self.n_resamples)
            except ValueError as error:
                raise ConfigError(str(error)) from error
        return estimate_id_profile(
            hidden,
            estimator,
            n_resamples=self.n_resamples,
            resampling=self.resampling,
            resample_fraction=self.resample_fraction,
            seed=self.sample_seed,
            progress=progress,
        )

    @classmethod
    def from_config(cls, estimator_cfg: DictConfig) -> EstimatorSettings:
        return cls(
            pooling=estimator_cfg.pooling,
            tokens_per_text=estimator_cfg.get("tokens_per_text", cls.tokens_per_text),
            dedup=estimator_cfg.get("dedup", cls.dedup),
            dedup_threshold=float(estimator_cfg.get("dedup_threshold", cls.dedup_threshold)),
            batch_size=estimator_cfg.batch_size,
            n_resamples=estimator_cfg.n_resamples,
            resampling=estimator_cfg.resampling,
            resample_fraction=float(estimator_cfg.resample_fraction),
            sample_seed=estimator_cfg.sample_seed,
        )


@dataclass(frozen=True)
class ProfileResult:
    """The ID profile and how it was obtained.

    Attributes:
        seconds: wall time of this stage, whether the profile was computed or read.
        cache: ``outcome`` (``computed``: a miss; ``reused``; ``recomputed (stale)`` or
            ``recomputed (corrupt)``; ``off``), the cache ``key`` and the entry's ``path``.
        points: the points the ID was estimated on (``sample_points``): ``points``,
            ``tokens_per_text`` and ``short_texts`` under ``token`` pooling, and ``dedup``.
    """

    profile: IDProfile
    sample: IDSample
    pooling: str
    seconds: float
    cache: dict[str, str] | None = None
    points: dict | None = None


def id_sample_size(n_samples: int | str, task: TaskData) -> IDSample:
    """The hidden-state sample size: ``n_samples`` is an upper bound; ``all``, or a number above
    the task's distinct training inputs, takes every one of them (and says so in the note).

    Raises:
        ConfigError: fewer distinct training inputs than any estimator needs for a number.
    """
    distinct = len(set(task.train.inputs()))
    if distinct < MIN_ID_SAMPLE:
        raise ConfigError(
            f"task {task.name} has {distinct} distinct training inputs; the ID estimate needs "
            f"at least {MIN_ID_SAMPLE}"
        )
    if n_samples == "all":
        return IDSample(requested=n_samples, used=distinct)
    if n_samples > distinct:
        note = (
            f"estimator.n_samples={n_samples} is more than the {distinct} distinct training "
            f"inputs of {task.name}: the ID sample takes all {distinct}"
        )
        log.info(note)
        return IDSample(requested=n_samples, used=distinct, note=note)
    return IDSample(requested=n_samples, used=n_samples)


def sample_texts(texts: list[T], n_samples: int, seed: int) -> list[T]:
    """``n_samples`` distinct inputs (texts, or (text, pair) tuples) drawn with ``seed``.

    All of them if fewer. Repeated inputs are kept once: identical hidden states say nothing
    about the geometry.
    """
    texts = list(dict.fromkeys(texts))
    if n_samples >= len(texts):
        return list(texts)
    return [texts[i] for i in sorted(random.Random(seed).sample(range(len(texts)), n_samples))]


def estimation_device(accelerator: str | None) -> str:
    """Where the no-grad pass runs: CUDA when present and the trainer may use it."""
    usable = accelerator in (None, "auto", "gpu", "cuda")
    return "cuda" if usable and torch.cuda.is_available() else "cpu"


def estimate_profile(
    backbone: Backbone,
    task: TaskData,
    settings: EstimatorSettings,
    estimator: BaseEstimator,
    sample: IDSample,
    *,
    max_length: int,
    device: str = "cpu",
    cache_dir: Path | None = None,
) -> ProfileResult:
    """Hidden states of ``sample.used`` training inputs through the frozen pretrained model,
    pooled into points (near-copies dropped under ``estimator.dedup=near``), then their
    intrinsic dimension per layer; read from ``cache_dir`` when a job before computed
    the very same profile (``gelora.stages.profile_cache``).

    The sample, the token pooling and the resamples are drawn with ``settings.sample_seed``,
    not the training seed: a seed sweep varies training only and shares one profile.
    """
    started = time.perf_counter()
    seed = settings.sample_seed
    inputs, texts, pairs = _id_texts(backbone, task, sample, seed)
    key = lookup = None
    if cache_dir is not None:
        key = profile_key(backbone, texts, pairs, estimator, settings, max_length, device)
        lookup = load_cached_profile(cache_dir, key)
    if lookup is not None and lookup.profile is not None:
        profile = lookup.profile
        points = lookup.points or sample_points(settings, len(texts))  # older entries: no dedup
        log.info("ID profile reused from the cache (%s)", entry_path(cache_dir, key).name)
    else:
        collecting = time.perf_counter()
        model = backbone.model.to(device)
        collected = collect_hidden_sample(
            model,
            backbone.tokenizer,
            texts,
            pooling=settings.pooling,
            tokens_per_text=settings.tokens_per_text,
            batch_size=settings.batch_size,
            max_length=max_length,
            seed=seed,
            text_pairs=pairs,
        )
        model.to("cpu")
        hidden = collected.states
        log.info(hidden_states_summary(hidden.shape, time.perf_counter() - collecting))
        hidden, points = drop_near_copies(collected, settings, inputs)
        estimating = time.perf_counter()
        profile = settings.estimate(hidden, estimator)
        log.info(id_summary(profile, time.perf_counter() - estimating))
        if key is not None:
            store_profile(cache_dir, key, profile, points=points)
    log.info(format_id_profile(profile))
    cache = None if key is None else _cache_record(cache_dir, key, lookup)
    return ProfileResult(
        profile=profile,
        sample=sample,
        pooling=settings.pooling,
        seconds=round(time.perf_counter() - started, 3),
        cache=cache or {"outcome": "off"},
        points=points,
    )


def _id_texts(backbone: Backbone, task: TaskData, sample: IDSample, seed: int):
    """The ID sample's inputs as drawn, its texts as the model reads them (an instruction's
    prompt in the chat template) and, for a pair task, the second texts."""
    inputs = sample_texts(task.train.inputs(), sample.used, seed)
    if task.is_pair_task:
        texts, pairs = [a for a, _ in inputs], [b for _, b in inputs]
    else:
        texts, pairs = inputs, None
    # the texts as the model reads them (an instruction's prompt: its chat template)
    texts = kind_of(task.problem).id_texts(backbone.tokenizer, texts)
    return inputs, texts, pairs


def _cache_record(cache_dir: Path, key, lookup) -> dict[str, str]:
    """What the record says about the profile cache: computed, reused or recomputed (why)."""
    outcome = {"miss": "computed", "reused": "reused"}.get(lookup.outcome)
    return {
        "outcome": outcome or f"recomputed ({lookup.outcome})",
        "key": key.digest,
        "path": cache_entry_name(entry_path(cache_dir, key)),
    }


def cache_entry_name(path: Path) -> str:
    """A cache entry as a record names it: ``$GELORA_CACHE/id_profiles/<key>.json`` under the
    asset cache (a record names no folder of the machine that made it), else the path given."""
    try:
        return f"$GELORA_CACHE/{path.resolve().relative_to(cache_root().resolve()).as_posix()}"
    except ValueError:
        return str(path)


def sample_points(
    settings: EstimatorSettings, n_points: int, n_short_texts: int = 0, dedup: dict | None = None
) -> dict:
    """What the record says about the points of the ID sample (``ProfileResult.points``)."""
    points: dict = {"points": n_points}
    if settings.pooling == "token":
        points |= {"tokens_per_text": settings.tokens_per_text, "short_texts": n_short_texts}
    return points | {"dedup": dedup or {"rule": "none"}}


def drop_near_copies(
    collected: HiddenSample, settings: EstimatorSettings, inputs: list
) -> tuple[torch.Tensor, dict]:
    """The hidden states without the near-copies ``settings.dedup`` drops (the same points at
    every layer), and ``sample_points`` for the record."""
    hidden = collected.states
    short = collected.n_short_texts
    if short:
        log.info(
            "%d of %d texts have fewer than estimator.tokens_per_text=%d usable tokens: they "
            "give all they have",
            short,
            len(inputs),
            settings.tokens_per_text,
        )
    if settings.dedup == "none":
        return hidden, sample_points(settings, hidden.shape[1], short)
    found = near_duplicates(
        hidden[0], settings.dedup_threshold, texts=inputs, text_index=collected.text_index
    )
    log.info(
        "dedup: %d of %d points dropped as near-copies (%d repeated texts, %d within %.3g of "
        "another at layer 0)",
        found.n_dropped,
        found.n_points,
        found.n_text_copies,
        found.n_near_copies,
        found.radius,
    )
    return hidden[:, found.keep], sample_points(settings, len(found.keep), short, found.to_dict())


def hidden_states_summary(shape: tuple[int, ...], seconds: float) -> str:
    """What the hidden-state pass did, for the line that stays when its progress bar goes."""
    layers, inputs = shape[0], shape[1]
    return f"hidden states: {inputs:,} inputs x {layers} layers in {seconds:.1f} s"


def id_summary(profile: IDProfile, seconds: float) -> str:
    """What the ID estimation did, for the line that stays when its progress bar goes."""
    resamples = len(profile.layers[0].resampled) if profile.layers else 0
    each = f" (and {resamples} resamples each)" if resamples else ""
    return f"intrinsic dimension: {len(profile.layers)} layers{each} in {seconds:.1f} s"


def profile_key(
    backbone: Backbone,
    texts: list[str],
    pairs: list[str] | None,
    estimator: BaseEstimator,
    settings: EstimatorSettings,
    max_length: int,
    device: str,
) -> ProfileKey:
    """What the profile depends on: the weights the hidden states pass through (not the new
    head), the sampled token ids, and every estimation setting."""
    encoded = backbone.tokenizer(texts, pairs, truncation=True, max_length=max_length)
    return ProfileKey(
        weights=weights_digest(backbone.model, backbone.adapt_settings.head_modules),
        token_ids=token_ids_digest(encoded["input_ids"]),
        pooling=settings.pooling,
        tokens_per_text=settings.tokens_per_text if settings.pooling == "token" else None,
        dedup=None if settings.dedup == "none" else f"{settings.dedup}:{settings.dedup_threshold}",
        estimator=f"{type(estimator).__module__}.{estimator!r}",
        n_resamples=settings.n_resamples,
        resampling=settings.resampling,
        resample_fraction=settings.resample_fraction,
        seed=settings.sample_seed,
        batch_size=settings.batch_size,
        device=device,
    )
