"""Exact nearest neighbours in torch, blockwise, on CPU or CUDA, on any finite input.

Squared distances come from ``|x|^2 + |y|^2 - 2 x.y``: one matrix product per tile, so the
N x N distance matrix is never held whole (working memory is one ``block_size^2`` tile). That
expansion cancels catastrophically when the points lie far from the origin compared with their
spacing: in float32 its error grows with ``|x|^2``, not with ``|x - y|^2``. Used only to pick
``k + 2`` candidates, it picked the wrong first neighbour for most points of a layer of
[CLS]-pooled MiniLM states (norm 8-10, spread 0.01-0.02). The search is made exact in three
steps (the tiles and their error bound live in ``gelora.geometry.distance_tiles``):

1. **Centre, scale, tile in float32.** The points are moved to their float64 mean and scaled by a
   power of two; float32 tiles of these centred points (IEEE float32 matmuls, whatever the
   global TF32 setting) give each row ``k + extra_candidates`` candidates, whose distances are
   then recomputed in float64 from coordinate differences of the given points. Centring removes
   the offset the points share; it cannot help a tight cluster far from the mean of the whole
   set (one of two distant clusters), so it is not relied on: step 2 decides.
2. **Certify every row.** A rigorous bound ``G`` on a tile's rounding error
   (``distance_tiles.expansion_bound``, after Higham 2002, eq. 3.5) says how large the tile value
   of a point at true distance ``delta`` can be, from the row's centred norm alone. If ``G(d_k)``
   of the ``k``-th exact candidate distance ``d_k`` lies below the largest tile value kept in the
   row's list, every point left out of the list is strictly farther than ``d_k``: the row's
   ``k`` neighbours are exact.
3. **Fall back where the proof fails.** Rows left uncertified (a near-tie at the edge of the
   list, or a cluster whose spread is below ``~sqrt(D u)`` of its distance from the mean) are
   searched again against all points in float64 tiles with a wider list, and certified with
   the float64 bound; rows that still fail (a spread below ``~1e-7`` of that distance) get every
   distance from coordinate differences. On ordinary data nearly every row is certified at once,
   so exactness costs a centring pass and the float64 recomputation of ``N (k + extra)`` distances
   (``experiments/benchmarks/bench_id.md``).

Exact means: the neighbours of the given points as float64 arithmetic on their coordinate
differences finds them (distances within a few float64 roundings; exact ties in any order).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from gelora.geometry.distance_tiles import (
    candidates_against_all,
    centre_and_scale,
    centred,
    expansion_bound,
    ieee_float32_matmuls,
    merge,
    row_chunks,
    symmetric_candidates,
)
from gelora.geometry.points import as_point_tensor, drop_exact_duplicates

log = logging.getLogger(__name__)

_DEFAULT_BLOCK = 2048  # 2048 x 2048 fp32 distances: 16 MiB per tile
_RETRY_WIDENING = 4  # rows reaching the float64 step are the hard ones: a list 4x as long


@dataclass(frozen=True)
class ExactNeighbors:
    """The ``k`` nearest other points of every point, and how much of the search fell back.

    Attributes:
        distances: ``(N, k)`` float64, ascending.
        indices: ``(N, k)`` long, the neighbours' rows.
        n_float64_rows: rows not certified by the float32 tiles, searched again in float64.
        n_direct_rows: rows not certified by the float64 tiles either, whose distances to every
            point were computed from coordinate differences.
    """

    distances: torch.Tensor
    indices: torch.Tensor
    n_float64_rows: int
    n_direct_rows: int


def nearest_neighbor_distances(
    points: torch.Tensor, k: int = 2, *, block_size: int | None = None, extra_candidates: int = 2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances (float64) and indices of each point's ``k`` nearest other points, nearest first.

    See ``exact_nearest_neighbors``, of which this returns ``(distances, indices)``.
    """
    found = exact_nearest_neighbors(
        points, k, block_size=block_size, extra_candidates=extra_candidates
    )
    return found.distances, found.indices


def check_block_size(block_size) -> None:
    """Raise ``ValueError`` unless ``block_size`` is ``None`` (the default tile) or an int >= 1."""
    if block_size is not None and (
        not isinstance(block_size, int) or isinstance(block_size, bool) or block_size < 1
    ):
        raise ValueError(f"block_size must be an integer >= 1 or null, got {block_size!r}")


def exact_nearest_neighbors(
    points: torch.Tensor, k: int = 2, *, block_size: int | None = None, extra_candidates: int = 2
) -> ExactNeighbors:
    """The exact ``k`` nearest other points of every point (module docstring: why it is exact).

    The distance matrix is symmetric, so only float32 tiles on and above the diagonal are
    computed; each tile updates the candidates of its rows and of its columns. That halves the
    matrix products, the bulk of the work.

    Args:
        points: ``(N, D)`` finite floating-point tensor on any device (other dtypes are cast to
            float32, which is exact for float16 and bfloat16).
        k: neighbours per point (the point itself is never its own neighbour, but an exact
            duplicate of it is, at distance 0).
        block_size: rows and columns per tile (default 2048); memory is ``block_size^2`` floats,
            one float32 copy of the points, and ``O(N k)``.
        extra_candidates: candidates beyond ``k`` kept per row: the wider the list, the fewer
            rows fail certification and fall back to float64.
    """
    if points.ndim != 2:
        raise ValueError(f"points must be a 2-D (N, D) tensor, got shape {tuple(points.shape)}")
    n_points, width = points.shape
    if not 1 <= k < n_points:
        raise ValueError(f"need 1 <= k < N, got k={k} with N={n_points}")
    if points.dtype not in (torch.float32, torch.float64):
        points = points.float()
    points = points.contiguous()
    block = block_size or _DEFAULT_BLOCK
    n_candidates = min(k + extra_candidates, n_points - 1)
    centre, scale = centre_and_scale(points)
    tile_points = torch.empty((n_points, width), dtype=torch.float32, device=points.device)
    for rows in row_chunks(n_points, width):
        tile_points[rows] = centred(points[rows], centre, scale)
    with ieee_float32_matmuls():
        squares, candidates = symmetric_candidates(tile_points, n_candidates, block)
    all_rows = torch.arange(n_points, device=points.device)
    distances, indices, certified = _select_and_certify(
        points, all_rows, candidates, squares, tile_points, scale, k
    )
    del tile_points, squares, candidates
    retry = all_rows[~certified]
    n_retry_candidates = min(_RETRY_WIDENING * n_candidates, n_points - 1)
    direct = [retry[:0]]
    for start in range(0, len(retry), block):  # step 3: float64 tiles for the uncertified rows
        rows = retry[start : start + block]
        left = centred(points[rows], centre, scale)
        squares, candidates = candidates_against_all(
            points, rows, left, centre, scale, n_retry_candidates, block
        )
        distances[rows], indices[rows], certified = _select_and_certify(
            points, rows, candidates, squares, left, scale, k
        )
        direct.append(rows[~certified])
    direct = torch.cat(direct)
    if len(direct):  # and coordinate differences where float64 tiles could not certify either
        distances[direct], indices[direct] = _direct_neighbors(points, direct, k)
    if len(retry):
        log.debug(
            "%d of %d rows searched again in float64 tiles, %d of them directly",
            len(retry),
            n_points,
            len(direct),
        )
    return ExactNeighbors(distances, indices, len(retry), len(direct))


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

    Rows whose nearest distance is still 0 (possible only through float64 underflow of a
    coordinate difference) are left out, so every ratio or logarithm of distances downstream is
    finite.
    """
    points = as_point_tensor(X, min_points=k + 1)
    if device is not None:
        points = points.to(device)
    distinct, n_duplicates = drop_exact_duplicates(points, min_points=k + 1)
    distances, _ = nearest_neighbor_distances(distinct, k=k, block_size=block_size)
    distances = distances.cpu().numpy()
    return DistinctNeighbors(
        distances=distances[distances[:, 0] > 0],
        n_points=int(points.shape[0]),
        n_duplicates=n_duplicates,
    )


def _exact_distances(points: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor):
    """Float64 distances from each of ``rows`` to its ``columns`` (one row of indices each),
    from coordinate differences (exact up to the rounding of the float64 result), in small
    chunks: this runs on ``N (k + extra)`` pairs, but memory-bound."""
    out = torch.empty(columns.shape, dtype=torch.float64, device=points.device)
    for chunk in row_chunks(len(rows), columns.shape[1] * points.shape[1]):
        differences = points[columns[chunk]].double()
        differences -= points[rows[chunk], None, :]
        out[chunk] = torch.linalg.vector_norm(differences, dim=-1)
    return out


def _select_and_certify(
    points: torch.Tensor,
    rows: torch.Tensor,
    candidates: torch.Tensor,
    squares: torch.Tensor,
    tile_rows: torch.Tensor,
    scale: float,
    k: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``k`` exactly nearest candidates of each row, and whether the row is certified: no
    point outside its candidate list can be nearer (module docstring, step 2).

    ``squares`` are the rows' candidate tile values, ``tile_rows`` the rows' centred, scaled
    coordinates as the tiles saw them (their dtype sets the bound's precision).
    """
    exact = _exact_distances(points, rows, candidates)
    order = exact.argsort(dim=1, stable=True)[:, :k]
    distances, indices = exact.gather(1, order), candidates.gather(1, order)
    if candidates.shape[1] >= points.shape[0] - 1:  # every other point is a candidate
        return distances, indices, torch.ones(len(rows), dtype=torch.bool, device=points.device)
    norms = torch.cat(  # in float64, a chunk at a time (no float64 copy of all the points)
        [
            torch.linalg.vector_norm(tile_rows[chunk].double(), dim=1)
            for chunk in row_chunks(len(tile_rows), tile_rows.shape[1])
        ]
    )
    bound = expansion_bound(distances[:, -1] * scale, norms, tile_rows.dtype, points.shape[1])
    return distances, indices, bound < squares.max(dim=1).values.double()


def _direct_neighbors(
    points: torch.Tensor, rows: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Brute force from coordinate differences in float64 (``len(rows) N D`` subtractions):
    exact and slow, for the rows that no tile could certify."""
    n_points, width = points.shape
    best = torch.full((len(rows), k), float("inf"), dtype=torch.float64, device=points.device)
    best_idx = torch.zeros((len(rows), k), dtype=torch.long, device=points.device)
    for index, row in enumerate(rows.tolist()):
        here = slice(index, index + 1)
        for columns in row_chunks(n_points, width):
            distances = torch.linalg.vector_norm(
                points[columns].double() - points[row].double(), dim=1
            )
            start = columns.start
            if start <= row < start + len(distances):
                distances[row - start] = float("inf")  # a point is not its own neighbour
            tile = torch.topk(distances, min(k, len(distances)), largest=False)
            best[here], best_idx[here] = merge(
                best[here], best_idx[here], tile.values[None], tile.indices[None] + start
            )
    return best, best_idx
