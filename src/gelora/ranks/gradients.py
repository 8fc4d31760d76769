"""Gradient allocators: a budget shared by block scores read off the task loss's gradients.

Both score every target matrix on the frozen model and a few seeded training batches
(``gelora.ranks.scoring.ScoringAllocator``: the inputs, the cache, the timing and the record)
and share the budget by block scores exactly as budgeted GeLoRA does, so at equal budget the
rows differ from ``gelora_budget`` only in the block scores.

- ``FisherAllocator`` (``fisher``): the diagonal empirical Fisher, ``F_i = E[g_i^2]`` (Kirkpatrick
  et al. 2017, EWC), estimated as the mean over the batches of the squared mini-batch gradient,
  summed over the matrix's entries: a matrix's score is the trace of its diagonal Fisher, a
  block's the sum over its matrices (the trace over all its adapted weights, which does not
  depend on how they are grouped into matrices; a mean over entries would weigh a 384x384
  entry four times a 384x1536 one). EWC squares per-example gradients; the squared mini-batch
  gradient used here is cheaper (one backward pass per batch) and estimates the per-example
  variance over the batch size plus the squared mean gradient: a batch-level proxy, computed
  alike for every matrix.
- ``GradientSpectrumAllocator`` (``gradient_spectrum``): the effective rank (Roy & Vetterli 2007:
  ``exp`` of the entropy of the singular values normalised to sum 1) of the matrix's gradient
  accumulated over the batches, how many directions the task pulls it in; a block's score is
  the mean over its matrices (an effective rank again; every block holds the same matrices, so
  a sum would give the same allocation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from gelora.ranks.scoring import ScoringAllocator
from gelora.ranks.scoring_inputs import ScoreInputs


def effective_rank(matrix: torch.Tensor) -> float:
    """Roy & Vetterli (2007): ``exp(-sum_k p_k log p_k)``, ``p_k = s_k / sum_j s_j`` over the
    singular values ``s``; between 1 (rank one) and the rank (equal singular values), 0 for the
    zero matrix.

    The singular values come from numpy's LAPACK: torch's took seconds per 384x384 matrix after
    a backward pass on a busy 2-core machine, numpy's milliseconds.
    """
    values = np.linalg.svd(matrix.detach().double().cpu().numpy(), compute_uv=False)
    total = float(values.sum())
    if total <= 0:
        return 0.0
    p = values[values > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def fisher_scores(inputs: ScoreInputs) -> list[float]:
    """Per weight matrix: the mean over the batches of the squared loss gradient, summed over
    the matrix's entries (the trace of its diagonal empirical Fisher)."""
    totals = [0.0] * len(inputs.weights)
    for grads in inputs.gradients():
        for j, grad in enumerate(grads):
            totals[j] += float(grad.double().pow(2).sum())
    return [total / len(inputs.batches) for total in totals]


def gradient_spectrum_scores(inputs: ScoreInputs) -> list[float]:
    """Per weight matrix: the effective rank of its loss gradient accumulated (summed) over
    the batches."""
    summed = [torch.zeros_like(w, dtype=torch.float64) for w in inputs.weights]
    for grads in inputs.gradients():
        for total, grad in zip(summed, grads, strict=True):
            total += grad.double()
    return [effective_rank(total) for total in summed]


class FisherAllocator(ScoringAllocator):
    """``fisher``: block score = the trace of the block's diagonal empirical Fisher (EWC)."""

    name = "fisher"

    def score(self, inputs: ScoreInputs) -> list[float]:
        return fisher_scores(inputs)


class GradientSpectrumAllocator(ScoringAllocator):
    """``gradient_spectrum``: block score = the mean effective rank of its matrices' gradients."""

    name = "gradient_spectrum"

    def score(self, inputs: ScoreInputs) -> list[float]:
        return gradient_spectrum_scores(inputs)

    def block_score(self, scores: Sequence[float]) -> float:
        return float(sum(scores) / len(scores)) if scores else 0.0
