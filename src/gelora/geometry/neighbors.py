"""Exact nearest neighbours in torch, blockwise, on CPU or CUDA.

Distances come from ``|x|^2 + |y|^2 - 2 x.y``: one matrix product per tile, so the N x N
distance matrix is never held whole (working memory is one ``block_size^2`` tile). That
expansion loses precision for near-duplicate points (catastrophic cancellation), so it only picks
candidates: a few extra candidates are kept per point and their distances are recomputed exactly
from coordinate differences before the final selection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gelora.geometry.points import as_point_tensor, drop_exact_duplicates

_DEFAULT_BLOCK = 2048  # 2048 x 2048 fp32 distances: 16 MiB per tile


def nearest_neighbor_distances(
    points: torch.Tensor, k: int = 2, *, block_size: int | None = None, extra_candidates: int = 2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances and indices of each point's ``k`` nearest other points, nearest first.

    The distance matrix is symmetric, so only tiles on and above the diagonal are computed; each
    tile updates the candidates of its rows and of its columns. That halves the matrix products,
    the bulk of the work.

    Args:
        points: ``(N, D)`` floating-point tensor on any device; computed in float32 at least.
        k: neighbours per point (the point itself is never its own neighbour, but an exact
            duplicate of it is, at distance 0).
        block_size: rows and columns per tile (default 2048); memory is ``block_size^2`` floats
            plus ``O(N k)``.
        extra_candidates: candidates beyond ``k`` whose exact distances are recomputed.

    Returns:
        ``(distances, indices)``, each ``(N, k)``.
    """
    if points.ndim != 2:
        raise ValueError(f"points must be a 2-D (N, D) tensor, got shape {tuple(points.shape)}")
    n_points = points.shape[0]
    if not 1 <= k < n_points:
        raise ValueError(f"need 1 <= k < N, got k={k} with N={n_points}")
    if points.dtype not in (torch.float32, torch.float64):
        points = points.float()
    points = points.contiguous()
    block = block_size or _DEFAULT_BLOCK
    n_candidates = min(k + extra_candidates, n_points - 1)
    _, best_idx = _symmetric_candidates(points, n_candidates, block)
    # Exact distances of the candidates, from coordinate differences (in row chunks, so the
    # (rows, candidates, D) difference tensor stays small).
    exact = torch.cat(
        [
            (points[start : start + block, None, :] - points[best_idx[start : start + block]]).norm(
                dim=-1
            )
            for start in range(0, n_points, block)
        ]
    )
    order = exact.argsort(dim=1)[:, :k]
    return exact.gather(1, order), best_idx.gather(1, order)


@dataclass(frozen=True)
class DistinctNeighbors:
    """Neighbour distances of the distinct rows of a point set, as the estimators need them."""

    distances: np.ndarray  # (n_used, k) float64, ascending, every first distance > 0
    n_points: int  # rows given
    n_duplicates: int  # rows removed as exact repeats


def distinct_neighbor_distances(
    X, k: int, *, device: str | None = None, block_size: int | None = None
) -> DistinctNeighbors:
    """Validate ``X``, drop repeated rows, and return the ``k`` neighbour distances per point.

    Rows whose nearest distance is still 0 (distinct rows that collide after the float32 cast)
    are left out, so every ratio or logarithm of distances downstream is finite.
    """
    points = as_point_tensor(X, min_points=k + 1)
    if device is not None:
        points = points.to(device)
    distinct, n_duplicates = drop_exact_duplicates(points, min_points=k + 1)
    distances, _ = nearest_neighbor_distances(distinct, k=k, block_size=block_size)
    distances = distances.double().cpu().numpy()
    return DistinctNeighbors(
        distances=distances[distances[:, 0] > 0],
        n_points=int(points.shape[0]),
        n_duplicates=n_duplicates,
    )


def _merge(
    best: torch.Tensor, best_idx: torch.Tensor, new: torch.Tensor, new_idx: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the ``best.shape[1]`` smallest of two candidate lists (rowwise)."""
    values = torch.cat([best, new], dim=1)
    indices = torch.cat([best_idx, new_idx], dim=1)
    kept = torch.topk(values, best.shape[1], dim=1, largest=False)
    return kept.values, indices.gather(1, kept.indices)


def _symmetric_candidates(
    points: torch.Tensor, n_candidates: int, block: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``n_candidates`` smallest squared distances of every row, from upper-triangle tiles."""
    n_points, device = points.shape[0], points.device
    squared_norms = (points * points).sum(dim=1)
    best = torch.full((n_points, n_candidates), float("inf"), device=device, dtype=points.dtype)
    best_idx = torch.zeros((n_points, n_candidates), dtype=torch.long, device=device)
    starts = list(range(0, n_points, block))
    for row_start in starts:
        row_stop = min(row_start + block, n_points)
        rows = slice(row_start, row_stop)
        for col_start in (s for s in starts if s >= row_start):
            col_stop = min(col_start + block, n_points)
            cols = slice(col_start, col_stop)
            # |r|^2 - 2 r.c + |c|^2 for the tile, the first two terms fused into one addmm.
            squared = torch.addmm(
                squared_norms[rows, None], points[rows], points[cols].T, alpha=-2.0
            )
            squared += squared_norms[None, cols]
            if col_start == row_start:
                squared.fill_diagonal_(float("inf"))  # a point is not its own neighbour
            n_row = min(n_candidates, col_stop - col_start)
            tile = torch.topk(squared, n_row, dim=1, largest=False)
            best[rows], best_idx[rows] = _merge(
                best[rows], best_idx[rows], tile.values, tile.indices + col_start
            )
            if col_start != row_start:
                n_col = min(n_candidates, row_stop - row_start)
                tile = torch.topk(squared.T, n_col, dim=1, largest=False)
                best[cols], best_idx[cols] = _merge(
                    best[cols], best_idx[cols], tile.values, tile.indices + row_start
                )
    return best, best_idx
