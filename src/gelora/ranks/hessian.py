"""Hessian-trace allocator (SADRA style): a block's rank from the curvature of the task loss.

A block's score is the trace of the loss's Hessian over its target weights, ``tr(H_b)``,
estimated by Hutchinson's method (Hutchinson 1989; Avron & Toledo 2011, JACM 58(2)):
``tr(H) = E[v^T H v]`` for ``v`` with i.i.d. Rademacher (+-1) entries, each ``H v`` one
Hessian-vector product (Pearlmutter 1994: the gradient of ``g . v``, double backward), as PyHessian
(Yao et al. 2020) computes it. One probe ``v`` spans all target weights at once; restricted to
matrix ``m``, ``E[v_m^T (H v)_m] = tr(H_mm)`` because ``E[v_i v_j] = 0`` for ``i != j``, so one HVP
per probe gives every matrix's trace, and a block's trace is the sum of its matrices'.

Choices the source leaves open, made here and recorded (``summary()``): ``probes`` Rademacher
probes per batch (8 by default), drawn with the batch draw's seed; the estimate is averaged
over the ``batches`` batches (the Hessian of the mean loss over them); a matrix whose estimate is
negative (negative curvature, or probe noise on a flat matrix) counts as 0; attention runs on
PyTorch's math kernel during the HVPs (the fused kernels have no double backward).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from gelora.ranks.scoring import ScoringAllocator
from gelora.ranks.scoring_inputs import ScoreInputs, batch_loss


def rademacher_like(weights: Sequence[torch.Tensor], generator: torch.Generator) -> list:
    """One probe: a +-1 tensor shaped as each weight, drawn on the CPU with ``generator``."""
    return [
        (torch.randint(0, 2, w.shape, generator=generator) * 2 - 1).to(w.device, w.dtype)
        for w in weights
    ]


def hutchinson_traces(
    loss: torch.Tensor,
    weights: Sequence[torch.Tensor],
    probes: int,
    generator: torch.Generator,
) -> list[float]:
    """Per weight ``m``: the mean over ``probes`` Rademacher ``v`` of ``v_m . (H v)_m``, an
    unbiased estimate of ``tr(H_mm)``, ``H`` the Hessian of ``loss`` w.r.t. ``weights``."""
    grads = torch.autograd.grad(loss, list(weights), create_graph=True)
    totals = [0.0] * len(weights)
    for k in range(probes):
        vectors = rademacher_like(weights, generator)
        products = torch.autograd.grad(
            grads, list(weights), grad_outputs=vectors, retain_graph=k < probes - 1
        )
        for j, (v, hv) in enumerate(zip(vectors, products, strict=True)):
            totals[j] += float((v.double() * hv.double()).sum())
    return [total / probes for total in totals]


class HessianTraceAllocator(ScoringAllocator):
    """``hessian_trace``: block score = the Hutchinson estimate of the trace of the loss's
    Hessian over the block's target weights (see the module)."""

    name = "hessian_trace"
    per = "block"

    def __init__(self, probes: int = 8, **kwargs: Any):
        if isinstance(probes, bool) or not isinstance(probes, int) or probes < 1:
            raise ValueError(f"rank_policy.probes must be an integer >= 1, got {probes!r}")
        super().__init__(**kwargs)
        self.probes = probes

    def score(self, inputs: ScoreInputs) -> list[float]:
        generator = torch.Generator().manual_seed(inputs.seed)
        device = inputs.weights[0].device
        totals = [0.0] * len(inputs.weights)
        with sdpa_kernel(SDPBackend.MATH):
            for batch in inputs.batches:
                loss = batch_loss(inputs.model, batch, device)
                traces = hutchinson_traces(loss, inputs.weights, self.probes, generator)
                totals = [total + t for total, t in zip(totals, traces, strict=True)]
        return [max(total / len(inputs.batches), 0.0) for total in totals]

    def cache_settings(self) -> dict[str, Any]:
        return {"probes": self.probes}

    def own_facts(self) -> dict[str, Any]:
        return {
            "probes": self.probes,
            "probe": "Rademacher, drawn with the batch seed",
            "negative_trace": "counts as 0",
            "hessian_vector_products": "probes x batches, per draw",
        }
