"""Adapters that run the reference implementations behind our estimator interface.

scikit-dimension (``skdim.id``) and dadapy are optional (``pip install -e ".[crosscheck]"``); they
serve as cross-checks of our estimators, e.g. ``gelora-train estimator=skdim_twonn``.
"""

from __future__ import annotations

import importlib

import numpy as np
from sklearn.base import BaseEstimator

from gelora.geometry.points import as_point_tensor


def _require(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{module} is not installed; install the cross-check extra: "
            'python -m pip install -e ".[crosscheck]"'
        ) from error


class SkdimEstimator(BaseEstimator):
    """Any ``skdim.id`` global estimator by class name, e.g. ``SkdimEstimator("TwoNN")``."""

    def __init__(self, name: str = "TwoNN", params: dict | None = None):
        self.name = name
        self.params = params

    def fit(self, X, y=None) -> SkdimEstimator:
        skdim_id = _require("skdim.id")
        points = as_point_tensor(X).double().cpu().numpy()
        fitted = getattr(skdim_id, self.name)(**(self.params or {})).fit(points)
        self.dimension_ = float(fitted.dimension_)
        self.n_points_ = self.n_used_ = len(points)
        return self


class DadapyTwoNN(BaseEstimator):
    """dadapy's ``Data.compute_id_2NN`` (Facco's fit, ``fraction`` of the points kept)."""

    def __init__(self, fraction: float = 0.9):
        self.fraction = fraction

    def fit(self, X, y=None) -> DadapyTwoNN:
        dadapy = _require("dadapy")
        points = np.ascontiguousarray(as_point_tensor(X).double().cpu().numpy())
        data = dadapy.Data(points, verbose=False)
        data.remove_identical_points()
        dimension, _, _ = data.compute_id_2NN(algorithm="base", mu_fraction=self.fraction)
        self.dimension_ = float(dimension)
        self.n_points_ = len(points)
        self.n_used_ = int(data.N)
        return self
