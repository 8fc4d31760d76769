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

    def _estimator(self):
        """skdim's estimator, built (cheap: scikit-learn style, it only stores its arguments)."""
        skdim_id = _require("skdim.id")
        estimator_class = getattr(skdim_id, str(self.name), None)
        if not isinstance(estimator_class, type) or not hasattr(estimator_class, "fit"):
            raise ValueError(f"name: skdim.id has no estimator {self.name!r}")
        try:
            return estimator_class(**(self.params or {}))
        except TypeError as error:
            raise ValueError(f"params: {error}") from error

    def check_params(self) -> None:
        """Raise for a missing extra, an unknown skdim class or arguments it does not take,
        before any model loads."""
        self._estimator()

    def fit(self, X, y=None) -> SkdimEstimator:
        estimator = self._estimator()
        points = as_point_tensor(X).double().cpu().numpy()
        fitted = estimator.fit(points)
        self.dimension_ = float(fitted.dimension_)
        self.n_points_ = self.n_used_ = len(points)
        return self


class DadapyTwoNN(BaseEstimator):
    """dadapy's ``Data.compute_id_2NN`` (Facco's fit, ``fraction`` of the points kept)."""

    def __init__(self, fraction: float = 0.9):
        self.fraction = fraction

    def check_params(self) -> None:
        """Raise for a missing extra or a share of points outside (0, 1], before any model
        loads."""
        _require("dadapy")
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"fraction must lie in (0, 1], got {self.fraction}")

    def fit(self, X, y=None) -> DadapyTwoNN:
        self.check_params()
        dadapy = _require("dadapy")
        points = np.ascontiguousarray(as_point_tensor(X).double().cpu().numpy())
        data = dadapy.Data(points, verbose=False)
        data.remove_identical_points()
        dimension, _, _ = data.compute_id_2NN(algorithm="base", mu_fraction=self.fraction)
        self.dimension_ = float(dimension)
        self.n_points_ = len(points)
        self.n_used_ = int(data.N)
        return self
