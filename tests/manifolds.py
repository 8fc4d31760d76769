"""Synthetic manifolds of known intrinsic dimension, for estimator tests and benchmarks."""

from __future__ import annotations

import numpy as np


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


def sphere(n: int, d: int, ambient: int, seed: int = 0) -> np.ndarray:
    """Uniform points on the unit d-sphere (in d + 1 coordinates), rotated into ``ambient``."""
    rng = np.random.default_rng(seed)
    points = rng.standard_normal((n, d + 1))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    rotation, _ = np.linalg.qr(rng.standard_normal((ambient, ambient)))
    return np.hstack([points, np.zeros((n, ambient - d - 1))]) @ rotation
