"""Our estimators against scikit-dimension and dadapy on the same data (the crosscheck extra)."""

from __future__ import annotations

import numpy as np
import pytest

from gelora import MLE, TwoNN
from gelora.geometry.reference import DadapyTwoNN, SkdimEstimator
from tests.manifolds import ball, gaussian

skdim = pytest.importorskip("skdim", reason="needs the crosscheck extra")
pytest.importorskip("dadapy", reason="needs the crosscheck extra")

DATASETS = {
    "ball5_in_10": lambda: ball(2000, 5, 10),
    "gaussian8_in_300": lambda: gaussian(2000, 8, 300, noise=1e-3),
    "ball10_in_12": lambda: ball(2000, 10, 12, seed=2),
}


@pytest.mark.parametrize("name", list(DATASETS))
def test_twonn_agrees_with_scikit_dimension_within_one_percent(name):
    points = DATASETS[name]()
    ours = TwoNN().fit(points).dimension_
    reference = skdim.id.TwoNN().fit(points).dimension_
    assert abs(ours - reference) / reference < 0.01


@pytest.mark.parametrize("name", list(DATASETS))
def test_twonn_agrees_with_dadapy_within_one_percent(name):
    points = DATASETS[name]()
    assert TwoNN().fit(points).dimension_ == pytest.approx(
        DadapyTwoNN().fit(points).dimension_, rel=0.01
    )


def test_mle_agrees_with_scikit_dimension():
    points = ball(2000, 6, 10)
    ours = MLE(k=20).fit(points).dimension_
    reference = skdim.id.MLE(K=20).fit(points).dimension_
    assert ours == pytest.approx(reference, rel=0.02)


def test_adapters_expose_the_estimator_interface():
    points = ball(500, 3, 6)
    assert SkdimEstimator("TwoNN").fit(points).dimension_ == pytest.approx(
        TwoNN().fit(points).dimension_, rel=0.01
    )
    assert np.isfinite(SkdimEstimator("MLE", {"K": 10}).fit(points).dimension_)


def test_twonn_stays_finite_and_true_with_ten_percent_duplicates():
    points = ball(2000, 5, 10)
    repeated = np.vstack([points, points[:200]])
    ours = TwoNN().fit(repeated).dimension_
    assert np.isfinite(ours) and abs(ours - 5) / 5 < 0.10
