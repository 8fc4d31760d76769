"""Near-copies in the ID sample: points dropped before estimating (``estimator.dedup``).

TwoNN reads each point's two nearest neighbours. A pair of near-copies (a post quoted with a
line changed, a template filled twice) makes ``r1`` tiny and ``mu = r2 / r1`` huge for both, and
a regression through the origin of ``-log(1 - F(mu))`` on ``log mu`` is pulled by those ratios.
Exact copies are already removed by the estimators (``gelora.geometry.points``); ``near`` also
removes the almost exact ones, by two rules applied in turn, and keeps one point per group:

1. **Text.** Texts equal after normalisation (lowercase, runs of whitespace collapsed to one
   space, ends stripped; a pair task's two texts each) are one group: every point of a later
   copy is dropped.
2. **Distance at the embeddings layer.** On the remaining points of layer 0 (the embeddings
   output, pooled as the sample is), let ``r1(i)`` be point ``i``'s exact nearest-neighbour
   distance (``gelora.geometry.neighbors``) and ``j(i)`` that neighbour. With
   ``m = median{ r1(i) : r1(i) > 0 }`` and ``tau = dedup_threshold``,

       i ~ j(i)   when   r1(i) < tau * m   (or r1(i) = 0),

   and the groups are the connected components of ``~`` (a chain of such links joins one
   group). The first point of each group in sample order is kept, the others dropped.

Layer 0 is used because it holds the input (token, position and segment embeddings) and no
computation of the blocks whose dimension is measured; the same points are dropped at every
layer, so consecutive layers still hold the same points. Under ``token`` pooling a layer-0 point
is one token's embedding at its position, so rule 2 joins the same token at the same position
in two texts: those are copies at layer 0 only, and the rule drops them everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from gelora.geometry.neighbors import exact_nearest_neighbors

DEDUPS = ("none", "near")


@dataclass(frozen=True)
class NearDuplicates:
    """Which points of a sample are kept, and how many each rule dropped.

    Attributes:
        keep: ``(kept,)`` long, ascending indices of the points kept.
        n_points: points given.
        n_text_copies: points dropped because their text repeats an earlier one (rule 1).
        n_near_copies: points dropped by the layer-0 distance rule (rule 2).
        threshold: ``tau``; ``radius``: ``tau * m``, the distance below which points are joined.
    """

    keep: torch.Tensor
    n_points: int
    n_text_copies: int
    n_near_copies: int
    threshold: float
    radius: float

    @property
    def n_dropped(self) -> int:
        return self.n_text_copies + self.n_near_copies

    def to_dict(self) -> dict:
        return {
            "rule": "near",
            "threshold": self.threshold,
            "radius": self.radius,
            "points_before": self.n_points,
            "dropped": self.n_dropped,
            "text_copies": self.n_text_copies,
            "near_copies": self.n_near_copies,
        }


def normalise_text(text: str | Sequence[str]) -> str | tuple[str, ...]:
    """Lowercase, whitespace runs collapsed to one space, ends stripped (each text of a pair)."""
    if isinstance(text, str):
        return re.sub(r"\s+", " ", text).strip().lower()
    return tuple(normalise_text(part) for part in text)


def text_copies(texts: Sequence[str | Sequence[str]]) -> torch.Tensor:
    """``(N,)`` bool: text ``i`` equals an earlier text after ``normalise_text``."""
    seen: set = set()
    copies = []
    for text in texts:
        key = normalise_text(text)
        copies.append(key in seen)
        seen.add(key)
    return torch.tensor(copies, dtype=torch.bool)


def _components(n: int, edges: torch.Tensor) -> torch.Tensor:
    """Union-find over ``edges`` ``(E, 2)``: each node's group root, the smallest index."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in edges.tolist():
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return torch.tensor([root(i) for i in range(n)], dtype=torch.long)


def near_duplicates(
    layer0: torch.Tensor,
    threshold: float = 0.1,
    *,
    texts: Sequence[str | Sequence[str]] | None = None,
    text_index: torch.Tensor | None = None,
) -> NearDuplicates:
    """The points of a sample to keep after dropping near-copies (module docstring: the rule).

    Args:
        layer0: ``(P, width)`` pooled embeddings-layer vectors of the sample's points.
        threshold: ``tau`` (>= 0), as a share of the median nearest-neighbour distance.
        texts: the sample's texts (or pairs), for rule 1; ``None`` skips it.
        text_index: ``(P,)`` the text of each point (``token`` pooling); the identity if
            ``None``.
    """
    if not threshold >= 0:
        raise ValueError(f"dedup threshold must be a number >= 0, got {threshold!r}")
    n_points = layer0.shape[0]
    if text_index is None:
        text_index = torch.arange(n_points)
    alive = torch.ones(n_points, dtype=torch.bool)
    if texts is not None:
        alive &= ~text_copies(texts)[text_index]
    n_text = int(n_points - alive.sum())
    remaining = alive.nonzero().flatten()
    radius = 0.0
    if len(remaining) >= 2:
        found = exact_nearest_neighbors(layer0[remaining], k=1)
        r1, nearest = found.distances[:, 0].cpu(), found.indices[:, 0].cpu()
        positive = r1[r1 > 0]
        radius = float(threshold * positive.median()) if len(positive) else 0.0
        linked = (r1 < radius) | (r1 == 0)
        edges = torch.stack([torch.arange(len(remaining))[linked], nearest[linked]], dim=1)
        roots = _components(len(remaining), edges)
        alive[remaining[roots != torch.arange(len(remaining))]] = False
    keep = alive.nonzero().flatten()
    return NearDuplicates(
        keep=keep,
        n_points=n_points,
        n_text_copies=n_text,
        n_near_copies=int(n_points - n_text - len(keep)),
        threshold=float(threshold),
        radius=radius,
    )
