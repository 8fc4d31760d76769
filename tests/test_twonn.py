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
from tests.manifolds import ball, gaussian, sphere

MANIFOLDS = {
    "ball_in_10": lambda d: ball(2000, d, 10),
    "sphere_in_300": lambda d: sphere(2000, d, 300),
    "gaussian_in_768": lambda d: gaussian(2000, d, 768, noise=1e-4),
}
ESTIMATORS = {"twonn": TwoNN(), "twonn_mle": TwoNN(method="mle"), "mle": MLE()}


@pytest.mark.parametrize("estimator", list(ESTIMATORS))
@pytest.mark.parametrize("manifold", list(MANIFOLDS))
@pytest.mark.parametrize("d", [2, 3, 5, 8, 10])
def test_recovers_the_dimension_of_synthetic_manifolds(estimator, manifold, d):
    """Within 10% for d <= 5 and 20% for d <= 10 at N = 2,000 (boundaries bias every estimator
    low as d grows)."""
    estimate = ESTIMATORS[estimator].fit(MANIFOLDS[manifold](d)).dimension_
    assert abs(estimate - d) / d < (0.10 if d <= 5 else 0.20), estimate


def test_float32_input_gives_the_float64_estimate():
    points = gaussian(2000, 5, 768, noise=1e-4)
    assert TwoNN().fit(points.astype(np.float32)).dimension_ == pytest.approx(
        TwoNN().fit(points).dimension_, rel=1e-3
    )


@pytest.mark.parametrize("estimator", [TwoNN(), MLE()])
def test_estimate_does_not_depend_on_where_the_cloud_sits(estimator):
    # A tight cloud (spread 0.002) moved 50 from the origin, in float32 like hidden states: the
    # uncentred float32 distance expansion gave TwoNN 3.9 and MLE 2.5 here instead of 5.0.
    points = gaussian(2000, 5, 384) * 0.002
    offset = np.random.default_rng(1).standard_normal(384)
    offset *= 50 / np.linalg.norm(offset)
    near, far = points.astype(np.float32), (points + offset).astype(np.float32)
    assert estimator.fit(far).dimension_ == pytest.approx(
        type(estimator)().fit(near).dimension_, rel=1e-3
    )


@pytest.mark.parametrize("estimator", list(ESTIMATORS))
def test_swiss_roll_is_two_dimensional(estimator):
    rng = np.random.default_rng(0)
    t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=2000))
    points = np.stack([t * np.cos(t), 21 * rng.uniform(size=2000), t * np.sin(t)], axis=1)
    assert abs(ESTIMATORS[estimator].fit(points).dimension_ - 2) / 2 < 0.10


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
