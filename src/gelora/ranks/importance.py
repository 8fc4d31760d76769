"""Importance allocator (RaLoRA style): a matrix's rank from the mean ``|W * dL/dW|``.

A weight's importance is the first-order estimate of the loss change if it were removed,
``|w dL/dw|`` (Molchanov et al. 2019, CVPR; the sensitivity AdaLoRA prunes by, Zhang et al. 2023,
eq. 7); a matrix's score is its mean over the matrix's entries, averaged over the batches:
``mean_b mean_ij |W_ij g_b,ij|``, ``g_b`` the loss gradient on batch ``b``.

Choices the source leaves open, made here and recorded (``summary()``): the absolute value is
taken per batch, then averaged (as AdaLoRA scores each step), not of the accumulated gradient;
the mean over entries (not the sum), so a matrix's size does not decide its score. Scores are per
matrix (``per = "matrix"``: ranks move across matrix types, attention and MLP, as well as across
blocks); ``per: block`` sums a block's.
"""

from __future__ import annotations

from typing import Any

from gelora.ranks.scoring import ScoringAllocator
from gelora.ranks.scoring_inputs import ScoreInputs


def importance_scores(inputs: ScoreInputs) -> list[float]:
    """Per weight matrix: ``mean_b mean_ij |W_ij g_b,ij|`` over the batches ``b``."""
    totals = [0.0] * len(inputs.weights)
    for grads in inputs.gradients():
        for j, (weight, grad) in enumerate(zip(inputs.weights, grads, strict=True)):
            totals[j] += float((weight.detach().double() * grad.double()).abs().mean())
    return [total / len(inputs.batches) for total in totals]


class ImportanceAllocator(ScoringAllocator):
    """``importance``: matrix score = the mean ``|W * dL/dW|`` over its entries and the batches."""

    name = "importance"
    per = "matrix"

    def score(self, inputs: ScoreInputs) -> list[float]:
        return importance_scores(inputs)

    def own_facts(self) -> dict[str, Any]:
        return {"importance": "mean over entries of |W * grad|, per batch, mean over batches"}
