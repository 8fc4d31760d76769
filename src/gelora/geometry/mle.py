"""Levina-Bickel maximum-likelihood intrinsic dimension (NIPS 2004), combined over points by the
harmonic mean as MacKay & Ghahramani's note recommends.

For a point x with neighbour distances ``T_1 <= ... <= T_k``:
``m_k(x) = [ (1 / (k - 1)) * sum_{j<k} log(T_k / T_j) ]^-1``, and the estimate is
``d = [ mean_x 1 / m_k(x) ]^-1``. Repeated rows are removed (one copy kept) and counted.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from gelora.geometry.neighbors import check_block_size, distinct_neighbor_distances


def levina_bickel_inverse(distances: np.ndarray) -> np.ndarray:
    """Per-point ``1 / m_k(x)`` from ``(N, k)`` ascending neighbour distances, all positive."""
    k = distances.shape[1]
    return np.log(distances[:, -1:] / distances[:, :-1]).sum(axis=1) / (k - 1)


class MLE(BaseEstimator):
    """Levina-Bickel MLE with ``k`` neighbours; scikit-learn style, ``dimension_`` after ``fit``.

    Attributes:
        dimension_, n_points_, n_used_, n_duplicates_: as for ``TwoNN``.
    """

    def __init__(self, k: int = 20, device: str | None = None, block_size: int | None = None):
        self.k = k
        self.device = device
        self.block_size = block_size

    def check_params(self) -> None:
        """Raise ``ValueError`` for a bad argument, before any model loads (``TwoNN``'s)."""
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 2:
            raise ValueError(f"k must be an integer >= 2, got {self.k!r}")
        check_block_size(self.block_size)

    def fit(self, X, y=None) -> MLE:
        self.check_params()
        neighbors = distinct_neighbor_distances(
            X, k=self.k, device=self.device, block_size=self.block_size
        )
        inverse = levina_bickel_inverse(neighbors.distances)
        informative = inverse > 0  # all k neighbours equidistant: no information
        if informative.sum() < 3:
            raise ValueError("fewer than 3 points have distinct neighbour distances")
        self.n_points_ = neighbors.n_points
        self.n_duplicates_ = neighbors.n_duplicates
        self.n_used_ = int(informative.sum())
        self.dimension_ = float(1.0 / inverse[informative].mean())
        return self

    def fit_transform(self, X, y=None) -> float:
        return self.fit(X).dimension_
