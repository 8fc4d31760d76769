"""Weight-spectrum allocator (LoRA-AR style): ranks from the spectrum of each pretrained weight.

No batches and no gradients: each target matrix ``W`` (``N x M``, ``N >= M`` after transposing)
is read through its empirical spectral density, the eigenvalues ``lambda`` of ``W^T W`` (the
squared singular values; WeightWatcher's ESD, Martin & Mahoney 2021, "Implicit
self-regularization in deep neural networks", JMLR 22(165)). Two statistics:

- **alpha**: the exponent of a power law ``p(lambda) ~ lambda^-alpha`` fitted to the ESD's tail
  (heavy-tailed self-regularisation, HT-SR). The fit is Clauset, Shalizi & Newman's (2009, SIAM
  Review 51(4), eq. 3.1): ``alpha = 1 + n / sum_i log(lambda_i / lambda_min)`` over the ``n``
  eigenvalues ``>= lambda_min``, with ``lambda_min`` the candidate that minimises the
  Kolmogorov-Smirnov distance between the tail and the fitted law, as WeightWatcher does through
  the ``powerlaw`` package. Our choice: a candidate must leave at least ``MIN_TAIL`` eigenvalues
  in the tail (all of them when a matrix has fewer), so that a one-point tail cannot win.
- **spikes**: the singular values above the Marchenko-Pastur bulk edge ``sigma (sqrt(N) +
  sqrt(M))``, the largest singular value of an ``N x M`` matrix of i.i.d. entries of standard
  deviation ``sigma`` (Marchenko & Pastur 1967; the edge as in Martin & Mahoney 2021, sec. 3):
  directions pretraining put above noise. Our choice: ``sigma`` is the standard deviation of
  ``W``'s entries, which the spikes themselves inflate a little (so the count errs low).

How the two become a rank is the open choice; ``statistic`` picks it and the record says which:
``alpha`` (the default): a larger alpha, a less heavy-tailed spectrum, reads in HT-SR as a matrix
less shaped by pretraining, which AlphaLoRA (Qing et al. 2024) gives more adapter capacity;
``spikes``: more directions above noise, more rank. Scores are per matrix (``per = "matrix"``:
ranks move across matrix types too); ``per: block`` sums a block's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from gelora.ranks.scoring import ScoringAllocator
from gelora.ranks.scoring_inputs import ScoreInputs

MIN_TAIL = 10  # fewest eigenvalues a power-law tail may hold (our choice, see the module)
STATISTICS = ("alpha", "spikes")


def spectrum(weight: torch.Tensor) -> np.ndarray:
    """The eigenvalues of ``W^T W`` (the squared singular values of ``W``), ascending."""
    values = np.linalg.svd(weight.detach().double().cpu().numpy(), compute_uv=False)
    return np.sort(values**2)


def power_law_alpha(eigenvalues: np.ndarray, xmin: float) -> float:
    """Clauset et al. (2009), eq. 3.1: ``1 + n / sum log(lambda_i / xmin)`` over ``lambda_i >=
    xmin``; ``inf`` when every tail value equals ``xmin``."""
    tail = eigenvalues[eigenvalues >= xmin]
    total = float(np.log(tail / xmin).sum())
    return 1.0 + len(tail) / total if total > 0 else math.inf


def ks_distance(tail: np.ndarray, xmin: float, alpha: float) -> float:
    """The largest gap between the tail's empirical CDF and the power law's,
    ``P(x) = 1 - (x / xmin)^(1 - alpha)``."""
    tail = np.sort(tail)
    fitted = 1.0 - (tail / xmin) ** (1.0 - alpha)
    n = len(tail)
    above = np.arange(1, n + 1) / n - fitted
    below = fitted - np.arange(0, n) / n
    return float(max(above.max(), below.max()))


def fit_power_law(eigenvalues: np.ndarray, min_tail: int = MIN_TAIL) -> tuple[float, float]:
    """``(alpha, xmin)``: the ``xmin`` among the eigenvalues whose fitted law lies closest (KS)
    to the tail above it, the tail holding at least ``min_tail`` values (all, if fewer)."""
    values = np.sort(eigenvalues[eigenvalues > 0])
    if len(values) < 2:
        raise ValueError("a power law needs at least two positive eigenvalues")
    last = max(len(values) - min(min_tail, len(values)), 0)
    best: tuple[float, float, float] | None = None
    for xmin in np.unique(values[: last + 1]):
        alpha = power_law_alpha(values, float(xmin))
        if not math.isfinite(alpha):
            continue
        distance = ks_distance(values[values >= xmin], float(xmin), alpha)
        if best is None or distance < best[0]:
            best = (distance, alpha, float(xmin))
    if best is None:
        raise ValueError("no power law fits: every tail is a single repeated value")
    return best[1], best[2]


def mp_spikes(weight: torch.Tensor) -> int:
    """Singular values above the Marchenko-Pastur bulk edge ``sigma (sqrt(N) + sqrt(M))``,
    ``sigma`` the standard deviation of the entries."""
    matrix = weight.detach().double().cpu().numpy()
    n, m = matrix.shape
    edge = float(matrix.std()) * (math.sqrt(n) + math.sqrt(m))
    return int((np.linalg.svd(matrix, compute_uv=False) > edge).sum())


class WeightSpectrumAllocator(ScoringAllocator):
    """``weight_spectrum``: per-matrix scores from the pretrained weights' spectra (see the
    module); ``statistic`` is ``alpha`` (power-law exponent) or ``spikes`` (MP outliers)."""

    name = "weight_spectrum"
    per = "matrix"
    needs_batches = False  # the weights alone: no draw, so no seed moves the plan

    def __init__(self, statistic: str = "alpha", min_tail: int = MIN_TAIL, **kwargs: Any):
        if statistic not in STATISTICS:
            raise ValueError(
                f"rank_policy.statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}"
            )
        if isinstance(min_tail, bool) or not isinstance(min_tail, int) or min_tail < 2:
            raise ValueError(f"rank_policy.min_tail must be an integer >= 2, got {min_tail!r}")
        super().__init__(**kwargs)
        self.statistic = statistic
        self.min_tail = min_tail

    def score(self, inputs: ScoreInputs) -> list[float]:
        if self.statistic == "spikes":
            return [float(mp_spikes(w)) for w in inputs.weights]
        return [fit_power_law(spectrum(w), self.min_tail)[0] for w in inputs.weights]

    def cache_settings(self) -> dict[str, Any]:
        return {"statistic": self.statistic, "min_tail": self.min_tail}

    def own_facts(self) -> dict[str, Any]:
        return {
            "statistic": self.statistic,
            "power_law": f"Clauset et al. 2009 MLE, xmin by KS, tail >= {self.min_tail} values",
            "mp_sigma": "standard deviation of the entries",
        }
