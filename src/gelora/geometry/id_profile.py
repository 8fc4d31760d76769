"""The intrinsic-dimension profile: one estimate per hidden-state layer, with an error bar.

The error bar comes from re-estimating on parts of the sample (configurable):

- ``subsample``: ``n_resamples`` random subsets of ``resample_fraction * N`` points;
- ``blocks``: the sample cut into ``n_resamples`` disjoint blocks (Facco et al.'s block analysis
  at one scale).

Both are estimates at a smaller N than the main one, so the spread is a conservative error bar.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from sklearn.base import BaseEstimator, clone
from tqdm.auto import tqdm

RESAMPLINGS = ("subsample", "blocks")


@dataclass(frozen=True)
class LayerID:
    """One layer's estimate. Layer 0 is the embeddings output; layer i the output of block i-1."""

    layer: int
    dimension: float
    n_used: int
    n_dropped: int
    resampled: tuple[float, ...] = field(default=())

    @property
    def std(self) -> float | None:
        return float(np.std(self.resampled, ddof=1)) if len(self.resampled) > 1 else None


@dataclass(frozen=True)
class IDProfile:
    layers: tuple[LayerID, ...]
    estimator: str
    resampling: str | None = None

    @property
    def dimensions(self) -> list[float]:
        return [layer.dimension for layer in self.layers]

    @property
    def stds(self) -> list[float | None]:
        return [layer.std for layer in self.layers]

    def resampled_profiles(self) -> list[list[float]]:
        """One full profile (all layers) per resample."""
        n = min((len(layer.resampled) for layer in self.layers), default=0)
        return [[layer.resampled[i] for layer in self.layers] for i in range(n)]

    def to_dict(self) -> dict:
        return {
            "estimator": self.estimator,
            "resampling": self.resampling,
            "layers": [{**asdict(layer), "std": layer.std} for layer in self.layers],
        }


MIN_RESAMPLE_POINTS = 3  # TwoNN: a first and a second neighbour, and two kept ratios


def check_block_size(n_points: int, n_resamples: int) -> None:
    """``resampling=blocks`` splits ``n_points`` into ``n_resamples`` disjoint blocks: each must
    hold ``MIN_RESAMPLE_POINTS`` to estimate from.

    Raises:
        ValueError: naming ``estimator.n_resamples`` and the block size.
    """
    if n_points // n_resamples < MIN_RESAMPLE_POINTS:
        raise ValueError(
            f"estimator.n_resamples={n_resamples} splits the {n_points} sample points into "
            f"blocks of {n_points // n_resamples} (resampling=blocks); an estimate needs at "
            f"least {MIN_RESAMPLE_POINTS}: lower n_resamples or raise n_samples"
        )


def resample_indices(
    n_points: int, *, resampling: str, n_resamples: int, fraction: float, seed: int
) -> list[np.ndarray]:
    """Index sets of the resamples (seeded, so every layer sees the same subsets)."""
    if resampling not in RESAMPLINGS:
        raise ValueError(f"resampling must be one of {RESAMPLINGS}, got {resampling!r}")
    rng = np.random.default_rng(seed)
    if resampling == "blocks":
        check_block_size(n_points, n_resamples)
        return list(np.array_split(rng.permutation(n_points), n_resamples))
    if not 0 < fraction < 1:
        raise ValueError(f"resample_fraction must lie in (0, 1), got {fraction}")
    size = max(3, round(fraction * n_points))
    return [np.sort(rng.choice(n_points, size=size, replace=False)) for _ in range(n_resamples)]


def estimate_id_profile(
    hidden_states: torch.Tensor,
    estimator: BaseEstimator,
    *,
    n_resamples: int = 0,
    resampling: str = "subsample",
    resample_fraction: float = 0.5,
    seed: int = 0,
    progress: bool = True,
) -> IDProfile:
    """Fit a fresh clone of ``estimator`` on every layer of ``(L + 1, N, width)`` hidden states,
    then on each resample of the points when ``n_resamples > 1``."""
    n_points = hidden_states.shape[1]
    subsets = (
        resample_indices(
            n_points,
            resampling=resampling,
            n_resamples=n_resamples,
            fraction=resample_fraction,
            seed=seed,
        )
        if n_resamples > 1
        else []
    )
    layers = []
    for index in tqdm(
        range(hidden_states.shape[0]), desc="intrinsic dimension", disable=not progress, leave=False
    ):
        points = hidden_states[index]
        fitted = clone(estimator).fit(points)
        n_used = getattr(fitted, "n_used_", n_points)
        resampled = tuple(
            float(clone(estimator).fit(points[torch.from_numpy(subset)]).dimension_)
            for subset in subsets
        )
        layers.append(
            LayerID(
                layer=index,
                dimension=float(fitted.dimension_),
                n_used=int(n_used),
                n_dropped=int(n_points - n_used),
                resampled=resampled,
            )
        )
    return IDProfile(
        layers=tuple(layers), estimator=repr(estimator), resampling=resampling if subsets else None
    )
