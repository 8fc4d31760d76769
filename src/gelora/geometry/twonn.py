"""TwoNN intrinsic-dimension estimator (Facco, d'Errico, Rodriguez & Laio, Sci. Rep. 7, 2017).

For every point, ``mu = r2 / r1`` is the ratio of the distances to its second and first nearest
neighbours. Under locally uniform density ``mu`` is Pareto distributed, ``F(mu) = 1 - mu^-d``, so
``-log(1 - F(mu)) = d log(mu)``. The ``fit`` method sorts ``mu``, discards the largest
``discard_fraction`` (10% by default: the tail is the most sensitive to density changes), sets the
empirical CDF ``F_i = i / N`` with the full ``N`` and fits that line through the origin by least
squares; ``d`` is its slope. The ``mle`` method is the maximum-likelihood form
``d = (N - 1) / sum(log mu_i)``.

Exact duplicates give ``r1 = 0`` and an infinite ``mu``; repeated rows are removed (one copy
kept) and counted in ``n_duplicates_`` instead of turning the estimate into nan.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from gelora.geometry.neighbors import check_block_size, distinct_neighbor_distances

_METHODS = ("fit", "mle")


def twonn_from_ratios(
    mu: np.ndarray, *, discard_fraction: float = 0.1, method: str = "fit"
) -> float:
    """Intrinsic dimension from neighbour-distance ratios ``mu = r2 / r1`` (finite, >= 1)."""
    mu = np.sort(np.asarray(mu, dtype=np.float64))
    n = mu.size
    if method == "mle":
        return float((n - 1) / np.log(mu).sum())
    n_kept = min(int(np.floor(n * (1.0 - discard_fraction))), n - 1)  # F_N = 1 has -log(0) = inf
    if n_kept < 2:
        raise ValueError(f"too few ratios ({n}) for discard_fraction={discard_fraction}")
    log_mu = np.log(mu[:n_kept])
    empirical_cdf = np.arange(1, n_kept + 1, dtype=np.float64) / n
    target = -np.log1p(-empirical_cdf)
    denominator = float(log_mu @ log_mu)
    if denominator == 0.0:
        raise ValueError("every kept ratio r2/r1 equals 1: the data have no measurable dimension")
    return float(log_mu @ target / denominator)


class TwoNN(BaseEstimator):
    """TwoNN intrinsic dimension, scikit-learn style: ``fit(X)`` fills ``dimension_``.

    Args:
        discard_fraction: share of the largest ``mu`` left out of the ``fit`` regression.
        method: ``"fit"`` (Facco's regression) or ``"mle"`` (maximum likelihood).
        device: torch device for the neighbour search (``None``: where the data already are).
        block_size: rows and columns per neighbour-search tile (``None``: 2048, a 16 MiB float32
            tile; see ``gelora.geometry.neighbors``).

    Attributes:
        dimension_: the estimate.
        n_points_: points given.
        n_used_: points whose ratio entered the estimate.
        n_duplicates_: rows removed as exact repeats of another row.
    """

    def __init__(
        self,
        discard_fraction: float = 0.1,
        method: str = "fit",
        device: str | None = None,
        block_size: int | None = None,
    ):
        self.discard_fraction = discard_fraction
        self.method = method
        self.device = device
        self.block_size = block_size

    def check_params(self) -> None:
        """Raise ``ValueError`` for a bad argument: a run calls it before any model loads (the
        scikit-learn convention of checking in ``fit`` would fail only after the hidden states
        are computed); ``fit`` calls it too."""
        if self.method not in _METHODS:
            raise ValueError(f"method must be one of {', '.join(_METHODS)}, got {self.method!r}")
        if not 0.0 <= self.discard_fraction < 1.0:
            raise ValueError(f"discard_fraction must lie in [0, 1), got {self.discard_fraction}")
        check_block_size(self.block_size)

    def fit(self, X, y=None) -> TwoNN:
        self.check_params()
        neighbors = distinct_neighbor_distances(
            X, k=2, device=self.device, block_size=self.block_size
        )
        r1, r2 = neighbors.distances[:, 0], neighbors.distances[:, 1]
        self.n_points_ = neighbors.n_points
        self.n_duplicates_ = neighbors.n_duplicates
        self.n_used_ = len(r1)
        self.dimension_ = twonn_from_ratios(
            r2 / r1, discard_fraction=self.discard_fraction, method=self.method
        )
        return self

    def fit_transform(self, X, y=None) -> float:
        return self.fit(X).dimension_
