"""TwoNN on synthetic manifolds of known dimension, degenerate data, and the exact kNN search."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from gelora import TwoNN
from gelora.geometry.mle import MLE
from gelora.geometry.neighbors import nearest_neighbor_distances
from gelora.geometry.twonn import twonn_from_ratios


def ball(n: int, d: int, ambient: int, seed: int = 0) -> np.ndarray:
    """Uniform points in a d-ball, embedded in ``ambient`` coordinates by a random rotation."""
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((n, d))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    points = directions * rng.uniform(size=(n, 1)) ** (1.0 / d)
    rotation, _ = np.linalg.qr(rng.standard_normal((ambient, ambient)))
    return np.hstack([points, np.zeros((n, ambient - d))]) @ rotation


def gaussian(n: int, d: int, ambient: int, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((ambient, d)))
    return rng.standard_normal((n, d)) @ basis.T + noise * rng.standard_normal((n, ambient))


@pytest.mark.parametrize("d", [2, 3, 5])
@pytest.mark.parametrize("method", ["fit", "mle"])
def test_recovers_the_dimension_of_a_ball(d, method):
    estimate = TwoNN(method=method).fit(ball(2000, d, 10)).dimension_
    assert abs(estimate - d) / d < 0.10, estimate


def test_recovers_a_gaussian_in_768_coordinates():
    points = gaussian(2000, 5, 768, noise=1e-4).astype(np.float32)
    assert abs(TwoNN().fit(points).dimension_ - 5) / 5 < 0.10


def test_swiss_roll_is_two_dimensional():
    rng = np.random.default_rng(0)
    t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=2000))
    points = np.stack([t * np.cos(t), 21 * rng.uniform(size=2000), t * np.sin(t)], axis=1)
    assert abs(TwoNN().fit(points).dimension_ - 2) / 2 < 0.10


@pytest.mark.parametrize("estimator", [TwoNN(), MLE()])
def test_duplicates_are_removed_and_counted_not_nan(estimator):
    points = ball(1000, 4, 8)
    with_duplicates = np.vstack([points, points[:100]])  # 10% repeated rows
    fitted = estimator.fit(with_duplicates)
    assert np.isfinite(fitted.dimension_)
    assert fitted.n_duplicates_ == 100 and fitted.n_points_ == 1100
    assert fitted.dimension_ == pytest.approx(type(estimator)().fit(points).dimension_)
    assert abs(fitted.dimension_ - 4) / 4 < 0.10


def test_fit_returns_self_and_follows_sklearn_conventions():
    estimator = TwoNN(discard_fraction=0.2)
    assert estimator.get_params()["discard_fraction"] == 0.2
    assert estimator.fit(ball(200, 2, 3)) is estimator
    assert estimator.n_points_ == 200


@pytest.mark.parametrize(
    ("points", "message"),
    [
        (np.ones((10, 3)), "constant"),
        (np.vstack([np.ones((10, 3)), np.zeros((10, 3))]), "only 2 distinct points"),
        (np.array([[0.0, 1.0], [np.nan, 2.0], [3.0, 4.0], [5.0, 6.0]]), "NaN"),
        (np.zeros((2, 3)), "at least 3"),
        (np.zeros(5), "2-D"),
    ],
)
def test_bad_input_gives_a_clear_error(points, message):
    with pytest.raises(ValueError, match=message):
        TwoNN().fit(points)


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="method"):
        TwoNN(method="magic").fit(ball(50, 2, 3))
    with pytest.raises(ValueError, match="discard_fraction"):
        TwoNN(discard_fraction=1.5).fit(ball(50, 2, 3))


def test_regression_formula_on_exact_pareto_quantiles():
    # mu at the exact quantiles of F(mu) = 1 - mu^-d lies on the fitted line: the slope is d.
    n, d = 1000, 7.0
    cdf = np.arange(1, n + 1) / (n + 1)
    mu = (1 - cdf) ** (-1 / d)
    assert twonn_from_ratios(mu, discard_fraction=0.1) == pytest.approx(d, rel=0.01)


@pytest.mark.parametrize("block_size", [None, 7])
def test_blockwise_neighbours_match_sklearn(block_size):
    rng = np.random.default_rng(0)
    points = rng.standard_normal((300, 16)).astype(np.float32)
    distances, indices = nearest_neighbor_distances(
        torch.from_numpy(points), k=3, block_size=block_size
    )
    ref_distances, ref_indices = NearestNeighbors(n_neighbors=4).fit(points).kneighbors(points)
    np.testing.assert_allclose(distances.numpy(), ref_distances[:, 1:], rtol=1e-5)
    np.testing.assert_array_equal(indices.numpy(), ref_indices[:, 1:])


def test_near_duplicates_keep_accurate_tiny_distances():
    rng = np.random.default_rng(0)
    points = rng.standard_normal((200, 64)).astype(np.float32) * 100
    points[1] = points[0] + 1e-3  # far below the cancellation error of |x|^2 + |y|^2 - 2xy
    distances, indices = nearest_neighbor_distances(torch.from_numpy(points), k=1)
    expected = np.linalg.norm(points[1] - points[0])
    assert indices[0, 0] == 1
    assert distances[0, 0].item() == pytest.approx(expected, rel=1e-3)
