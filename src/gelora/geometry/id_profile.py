"""The intrinsic-dimension profile: one estimate per hidden-state layer."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from sklearn.base import BaseEstimator, clone


@dataclass(frozen=True)
class LayerID:
    """One layer's estimate. Layer 0 is the embeddings output; layer i the output of block i-1."""

    layer: int
    dimension: float
    n_used: int
    n_dropped: int


@dataclass(frozen=True)
class IDProfile:
    layers: tuple[LayerID, ...]
    estimator: str

    @property
    def dimensions(self) -> list[float]:
        return [layer.dimension for layer in self.layers]

    def to_dict(self) -> dict:
        return {"estimator": self.estimator, "layers": [asdict(layer) for layer in self.layers]}


def estimate_id_profile(hidden_states: torch.Tensor, estimator: BaseEstimator) -> IDProfile:
    """Fit a fresh clone of ``estimator`` on every layer of ``(L + 1, N, width)`` hidden states."""
    layers = []
    for index, points in enumerate(hidden_states):
        fitted = clone(estimator).fit(points)
        n_used = getattr(fitted, "n_used_", points.shape[0])
        layers.append(
            LayerID(
                layer=index,
                dimension=float(fitted.dimension_),
                n_used=int(n_used),
                n_dropped=int(points.shape[0] - n_used),
            )
        )
    return IDProfile(layers=tuple(layers), estimator=repr(estimator))
