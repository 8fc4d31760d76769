"""Exact nearest neighbours in torch, blockwise, on CPU or CUDA.

Distances come from ``|x|^2 + |y|^2 - 2 x.y``: one matrix product per block of query rows, so
the N x N distance matrix is never held whole (working memory is ``block_size x N`` floats). That
expansion loses precision for near-duplicate points (catastrophic cancellation), so it only picks
candidates: a few extra candidates are kept per point and their distances are recomputed exactly
from coordinate differences before the final selection.
"""

from __future__ import annotations

import torch

_WORKING_FLOATS = 1 << 25  # 128 MiB of fp32 distances per block


def default_block_size(n_points: int) -> int:
    return max(1, min(n_points, _WORKING_FLOATS // max(n_points, 1)))


def nearest_neighbor_distances(
    points: torch.Tensor, k: int = 2, *, block_size: int | None = None, extra_candidates: int = 2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances and indices of each point's ``k`` nearest other points, nearest first.

    Args:
        points: ``(N, D)`` floating-point tensor on any device; computed in float32 at least.
        k: neighbours per point (the point itself is never its own neighbour, but an exact
            duplicate of it is, at distance 0).
        block_size: query rows per block; by default sized to keep about 128 MiB of distances.
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
    block = block_size or default_block_size(n_points)
    n_candidates = min(k + extra_candidates, n_points - 1)
    squared_norms = (points * points).sum(dim=1)
    candidate_idx = torch.empty(n_points, n_candidates, dtype=torch.long, device=points.device)
    for start in range(0, n_points, block):
        stop = min(start + block, n_points)
        queries = points[start:stop]
        # |q|^2 - 2 q.x + |x|^2, the first two terms fused into one addmm call.
        squared = torch.addmm(squared_norms[start:stop, None], queries, points.T, alpha=-2.0)
        squared += squared_norms[None, :]
        rows = torch.arange(stop - start, device=points.device)
        squared[rows, rows + start] = float("inf")  # a point is not its own neighbour
        candidate_idx[start:stop] = torch.topk(squared, n_candidates, dim=1, largest=False).indices
    exact = (points[:, None, :] - points[candidate_idx]).norm(dim=-1)
    order = exact.argsort(dim=1)[:, :k]
    return exact.gather(1, order), candidate_idx.gather(1, order)
