"""Stable-rank allocator (SA-LoRA style): ranks from each matrix's stable rank, calibrated by the
energy of its loss gradient.

A matrix's **stable rank** is ``srank(W) = ||W||_F^2 / ||W||_2^2 = sum_k s_k^2 / s_1^2`` over its
singular values ``s_1 >= s_2 >= ...`` (Rudelson & Vershynin 2007, "Sampling from large matrices",
JACM 54(4)): between 1 (rank one) and the rank (equal singular values), unchanged by scaling.
SR-LoRA (Zhang, Wang & Gu, ICCV 2025, arXiv:2507.00327) spends LoRA ranks by the stable rank of
the pretrained weights; SA-LoRA (Structure-Aware LoRA, github.com/E-green11/SA-LORA,
``SAlora/salora.py``) calibrates it with task gradients. Its rule, per target matrix ``m``, with
``lo, hi`` the multiplier range and ``p, q`` powers:

- spectral multiplier ``a_m = lo + (hi - lo) * ((s_m - min s) / (max s - min s))^p``, ``s_m`` the
  stable rank of the pretrained weight;
- gradient multiplier ``b_m = lo + (hi - lo) * ((g_m - min g) / (max g - min g))^q``, ``g_m`` the
  matrix's gradient energy (squared gradient norm) early in training;
- fused ``c_m = (1 - w) a_m + w b_m`` (``w`` the blend), divided by its mean over the matrices
  (SA-LoRA's budget conservation: the mean multiplier is 1), then clipped to ``[lo, hi]``.

SA-LoRA spends ``c_m`` as learning-rate multipliers at one uniform rank; here ``c_m`` is the
matrix's score, its share of the rank budget (``allocate_ranks``), as issue 46 lists it among the
static rank allocators. That transposition is ours: the source allocates no ranks with it, so the
row is named ``stable_rank``, not SA-LoRA.

Choices the source leaves open or that differ here, made and recorded (``summary()``):
``g_m`` is the mean over ``batches`` seeded training batches of ``||dL/dW_m||_F^2`` on the frozen
model (the ``fisher`` row's score), where SA-LoRA sums ``||dL/dA_m||^2`` of the LoRA factor ``A``
over its first training steps (zero at LoRA's initialisation, ``B = 0``, so no frozen-model
equivalent); ``lo = 0.5``, ``hi = 2``, ``p = q = 1`` are the source's defaults; the blend ``w =
0.5`` is ours (the source's default, 0, turns the calibration off; ``blend: 0`` here reads the
weights alone, draws no batches and no seed moves the plan); the min-max spans carry the source's
``1e-12``; SA-LoRA's depth prior, warm-up and online re-calibration act during training and are
left out. Scores are per matrix (``per = "matrix"``, as SA-LoRA's multipliers); ``per: block``
sums a block's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from gelora.ranks.gradients import fisher_scores
from gelora.ranks.scoring import ScoringAllocator
from gelora.ranks.scoring_inputs import ScoreInputs

SPAN_FLOOR = 1e-12  # added to a min-max span, as SA-LoRA does, so equal values give 0, not 0/0


def stable_rank(weight: torch.Tensor) -> float:
    """``||W||_F^2 / ||W||_2^2``: the squared singular values' sum over the largest one's; 0 for the
    zero matrix."""
    values = np.linalg.svd(weight.detach().double().cpu().numpy(), compute_uv=False)
    top = float(values.max()) ** 2 if values.size else 0.0
    return float((values**2).sum()) / top if top > 0 else 0.0


def range_multipliers(values: Sequence[float], low: float, high: float, power: float) -> list:
    """SA-LoRA's map: each value min-max normalised over ``values``, raised to ``power``, mapped
    linearly onto ``[low, high]``."""
    smallest, span = min(values), max(values) - min(values) + SPAN_FLOOR
    return [low + (high - low) * ((v - smallest) / span) ** power for v in values]


def fused_multipliers(
    spectral: Sequence[float], gradient: Sequence[float], blend: float, low: float, high: float
) -> list[float]:
    """``(1 - blend) spectral + blend gradient``, over its mean, clipped to ``[low, high]``."""
    fused = [(1 - blend) * a + blend * b for a, b in zip(spectral, gradient, strict=True)]
    mean = sum(fused) / len(fused)
    return [min(max(f / mean, low), high) if mean > 0 else f for f in fused]


def _number(value: Any, key: str, low: float, high: float, low_open: bool = False) -> float:
    """``value`` as a float in ``[low, high]`` (``(low, high]`` with ``low_open``), or a
    ``ValueError`` naming ``rank_policy.<key>``."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not (value > low if low_open else value >= low) or not value <= high:
        shown = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
        raise ValueError(f"rank_policy.{key} must be a number in {shown}, got {value!r}")
    return float(value)


class StableRankAllocator(ScoringAllocator):
    """``stable_rank``: matrix score = SA-LoRA's multiplier, the stable rank of the pretrained
    weight blended with the energy of its loss gradient (see the module)."""

    name = "stable_rank"
    per = "matrix"

    def __init__(
        self,
        blend: float = 0.5,
        min_mult: float = 0.5,
        max_mult: float = 2.0,
        power: float = 1.0,
        grad_power: float = 1.0,
        **kwargs: Any,
    ):
        self.blend = _number(blend, "blend", 0.0, 1.0)
        self.min_mult = _number(min_mult, "min_mult", 0.0, math.inf)
        self.max_mult = _number(max_mult, "max_mult", self.min_mult, math.inf)
        if self.max_mult == 0:
            raise ValueError("rank_policy.max_mult must be > 0, got 0")
        self.power = _number(power, "power", 0.0, math.inf, low_open=True)
        self.grad_power = _number(grad_power, "grad_power", 0.0, math.inf, low_open=True)
        super().__init__(**kwargs)
        self.needs_batches = self.blend > 0  # blend 0: the weights alone, no draw, no seed

    def score(self, inputs: ScoreInputs) -> list[float]:
        ranks = [stable_rank(w) for w in inputs.weights]
        spectral = range_multipliers(ranks, self.min_mult, self.max_mult, self.power)
        if not self.needs_batches:
            return fused_multipliers(spectral, spectral, 0.0, self.min_mult, self.max_mult)
        energies = fisher_scores(inputs)
        gradient = range_multipliers(energies, self.min_mult, self.max_mult, self.grad_power)
        return fused_multipliers(spectral, gradient, self.blend, self.min_mult, self.max_mult)

    def cache_settings(self) -> dict[str, Any]:
        return {
            "blend": self.blend,
            "min_mult": self.min_mult,
            "max_mult": self.max_mult,
            "power": self.power,
            "grad_power": self.grad_power,
        }

    def own_facts(self) -> dict[str, Any]:
        return {
            **self.cache_settings(),
            "stable_rank": "||W||_F^2 / ||W||_2^2 of the pretrained weight",
            "gradient_energy": "mean over the batches of ||dL/dW||_F^2 (the fisher score)",
            "multiplier": "min-max to [min_mult, max_mult], blended, over its mean, clipped",
            "source": "SA-LoRA's learning-rate multipliers, spent here as rank shares",
        }
