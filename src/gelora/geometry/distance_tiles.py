"""Candidate neighbours from distance tiles, and a rigorous bound on how wrong a tile can be.

A tile holds ``s_ij = |z_i|^2 + |z_j|^2 - 2 z_i.z_j`` for a block of rows and columns: one matrix
product, the bulk of an all-pairs search. Its rounding error grows with ``|z|^2``, not with
``|z_i - z_j|^2``, so the points are first centred on their mean (summed in float64) and scaled
by a power of two (exact) that brings the largest coordinate into ``[0.5, 1)`` (no overflow).

The bound (``expansion_bound``). Let ``u`` be the tile's unit roundoff, ``D`` the width and
``gamma_n = n u / (1 - n u)``. A dot product computed in any summation order (so in any blocked
GEMM, with or without FMA) satisfies ``|fl(x.y) - x.y| <= gamma_D sum_k |x_k y_k|`` (Higham,
*Accuracy and Stability of Numerical Algorithms*, 2nd ed., SIAM 2002, eq. 3.5), and
``sum_k |x_k y_k| <= |x| |y|``. The squared norms, the product and the two additions of a tile
entry are at most ``D + 3`` rounded operations deep, so
``|s_ij - |z_i - z_j|^2| <= gamma_{D+4} (|z_i| + |z_j|)^2``; ``2 gamma_{D+4}`` is used, for margin.
The centred points ``z`` are the true ones ``(p - c) s`` rounded (float64, then the tile dtype),
so ``|z_i - y_i| <= u' |y_i|`` with ``u' = 2u``. For a row ``i`` with ``a = |z_i|`` and any point
``j`` at true scaled distance ``delta``, ``|z_j| <= a + |z_i - z_j|`` gives
``|z_i - z_j| <= T = (delta + 2 v a) / (1 - v)``, ``v = u' / (1 - u')``, hence
``s_ij <= G(delta) = T^2 + 2 gamma_{D+4} (2 a + T)^2``: increasing in ``delta`` and depending on
row ``i`` alone. Underflow (subnormal or flushed values) adds an absolute term, negligible at
this scaling, which is included. ``G`` is what lets ``gelora.geometry.neighbors`` prove that no
point outside a row's candidate list is nearer than its ``k``-th candidate.

The bound assumes IEEE arithmetic in the tile dtype: ``ieee_float32_matmuls`` switches off the
TF32 and bfloat16 modes of float32 matmuls for the search (``NVIDIA_TF32_OVERRIDE=1`` in the
environment would still force TF32 on NVIDIA GPUs, out of torch's reach).
"""

from __future__ import annotations

import contextlib
import math

import torch

CHUNK_ELEMENTS = 1 << 20  # values per elementwise float64 chunk (8 MiB): few ops, each still cheap
UNIT_ROUNDOFF = {torch.float32: 2.0**-24, torch.float64: 2.0**-53}
_SMALLEST_NORMAL = {torch.float32: 2.0**-126, torch.float64: 2.0**-1022}


def row_chunks(n_rows: int, values_per_row: int) -> list[slice]:
    """Row slices of about ``CHUNK_ELEMENTS`` values each."""
    step = max(1, CHUNK_ELEMENTS // max(values_per_row, 1))
    return [slice(start, start + step) for start in range(0, n_rows, step)]


def centre_and_scale(points: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The float64 mean of the points and a power of two that brings the largest centred
    coordinate into ``[0.5, 1)`` (1 for constant points). The bound needs neither to be exact:
    any centre and scale work, these make the tiles' error small."""
    n_points, width = points.shape
    total = torch.zeros(width, dtype=torch.float64, device=points.device)
    for rows in row_chunks(n_points, width):  # no float64 copy of all the points
        total += points[rows].double().sum(dim=0)
    centre = total / n_points
    low, high = points.amin(dim=0), points.amax(dim=0)
    extent = float(torch.maximum(high.double() - centre, centre - low.double()).max())
    return centre, 2.0 ** -math.frexp(extent)[1] if extent > 0 else 1.0


def centred(points: torch.Tensor, centre: torch.Tensor, scale: float) -> torch.Tensor:
    """``(points - centre) * scale`` in a new float64 tensor (scale is a power of two: exact)."""
    shifted = points.to(torch.float64, copy=True)
    shifted -= centre
    shifted *= scale
    return shifted


@contextlib.contextmanager
def ieee_float32_matmuls():
    """Float32 matrix products in IEEE float32 (no TF32 or bfloat16 inside), restored on exit.

    ``torch.set_float32_matmul_precision("high" or "medium")``, which Lightning suggests on GPUs,
    would otherwise void the bound. Not thread-safe: the setting is global.
    """
    backends = [getattr(torch.backends, name, None) for name in ("cuda", "mkldnn")]
    matmuls = [getattr(b, "matmul", None) for b in backends if b is not None]
    matmuls = [m for m in matmuls if hasattr(m, "fp32_precision")]
    if matmuls:  # torch >= 2.9: per-backend settings (the legacy call would raise if mixed)
        saved = [m.fp32_precision for m in matmuls]
        try:
            for m in matmuls:
                m.fp32_precision = "ieee"
            yield
        finally:
            for m, value in zip(matmuls, saved, strict=True):
                m.fp32_precision = value
    else:
        saved_precision = torch.get_float32_matmul_precision()
        try:
            torch.set_float32_matmul_precision("highest")
            yield
        finally:
            torch.set_float32_matmul_precision(saved_precision)


def merge(
    best: torch.Tensor, best_idx: torch.Tensor, new: torch.Tensor, new_idx: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the ``best.shape[1]`` smallest of two candidate lists (rowwise)."""
    values = torch.cat([best, new], dim=1)
    indices = torch.cat([best_idx, new_idx], dim=1)
    kept = torch.topk(values, best.shape[1], dim=1, largest=False)
    return kept.values, indices.gather(1, kept.indices)


def symmetric_candidates(
    points: torch.Tensor, n_candidates: int, block: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``n_candidates`` smallest tile values of every row and their columns, from the tiles
    on and above the diagonal: each tile updates the candidates of its rows and of its columns,
    which halves the matrix products."""
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
            best[rows], best_idx[rows] = merge(
                best[rows], best_idx[rows], tile.values, tile.indices + col_start
            )
            if col_start != row_start:
                n_col = min(n_candidates, row_stop - row_start)
                tile = torch.topk(squared.T, n_col, dim=1, largest=False)
                best[cols], best_idx[cols] = merge(
                    best[cols], best_idx[cols], tile.values, tile.indices + row_start
                )
    return best, best_idx


def candidates_against_all(
    points: torch.Tensor,
    rows: torch.Tensor,
    left: torch.Tensor,
    centre: torch.Tensor,
    scale: float,
    n_candidates: int,
    block: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Like ``symmetric_candidates`` for some rows only (``left``: their centred, scaled float64
    coordinates) against every point, in float64 tiles whose columns are centred a block at a
    time."""
    n_points, device = points.shape[0], points.device
    left_norms = (left * left).sum(dim=1)
    best = torch.full((len(rows), n_candidates), float("inf"), dtype=torch.float64, device=device)
    best_idx = torch.zeros((len(rows), n_candidates), dtype=torch.long, device=device)
    for start in range(0, n_points, block):
        columns = torch.arange(start, min(start + block, n_points), device=device)
        right = centred(points[start : start + block], centre, scale)
        squared = torch.addmm(left_norms[:, None], left, right.T, alpha=-2.0)
        squared += (right * right).sum(dim=1)[None, :]
        squared.masked_fill_(rows[:, None] == columns[None, :], float("inf"))
        tile = torch.topk(squared, min(n_candidates, len(columns)), dim=1, largest=False)
        best, best_idx = merge(best, best_idx, tile.values, columns[tile.indices])
    return best, best_idx


def expansion_bound(
    delta: torch.Tensor, norm: torch.Tensor, dtype: torch.dtype, width: int
) -> torch.Tensor:
    """``G(delta)`` of the module docstring: no point at true (scaled) distance ``<= delta`` from
    a row of centred (scaled) norm ``norm`` has a tile value above it, in tiles of ``dtype``."""
    unit, smallest = UNIT_ROUNDOFF[dtype], _SMALLEST_NORMAL[dtype]
    rounding = 2.0 * unit  # u': the float64 centring, then the rounding to the tile dtype
    v = rounding / (1.0 - rounding)
    flushed = math.sqrt(width) * smallest / (1.0 - rounding)  # underflow, per vector
    n = width + 4
    gamma = 2.0 * n * unit / (1.0 - n * unit)
    reach = (delta + 2.0 * v * norm + 2.0 * flushed) / (1.0 - v)
    bound = reach * reach + gamma * (2.0 * norm + reach) ** 2 + 8.0 * n * smallest
    return bound * (1.0 + 1e-9)  # covers the float64 evaluation of all this, and of delta
