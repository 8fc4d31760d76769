"""Input checks and exact-duplicate removal shared by the intrinsic-dimension estimators."""

from __future__ import annotations

import torch


def as_point_tensor(points, *, min_points: int = 3) -> torch.Tensor:
    """Validate ``(N, D)`` finite points and return them as a float tensor (no copy if possible)."""
    tensor = torch.as_tensor(points)
    if tensor.ndim != 2:
        raise ValueError(f"expected a 2-D array of points (N, D), got shape {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        tensor = tensor.float()
    if tensor.shape[0] < min_points:
        raise ValueError(f"need at least {min_points} points, got {tensor.shape[0]}")
    if not torch.isfinite(tensor).all():
        raise ValueError("points contain NaN or infinite values")
    return tensor


def drop_exact_duplicates(points: torch.Tensor, *, min_points: int = 3) -> tuple[torch.Tensor, int]:
    """The distinct rows of ``points`` and how many rows were removed as repeats.

    A repeated row has a neighbour at distance 0 (``r1 = 0``, so ``mu = r2 / r1`` is infinite),
    and it also makes ``r1 = r2`` for the points around it: keeping one copy of each row
    avoids both biases, where dropping only the zero-distance points would keep the second.
    """
    unique = torch.unique(points, dim=0)
    if unique.shape[0] < min_points:
        raise ValueError(
            f"only {unique.shape[0]} distinct points among {points.shape[0]}: the data are "
            "(almost) constant"
        )
    return unique, int(points.shape[0] - unique.shape[0])
