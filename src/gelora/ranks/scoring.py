"""``ScoringAllocator``: an allocator whose scores are read off the frozen model before training.

An allocator of this kind is one scoring function, ``score(inputs) -> one float per target
matrix``; this base does the rest, the same for every such allocator:

- **inputs** (``gelora.ranks.scoring_inputs.ScoreInputs``): the frozen pretrained model with
  its new head redrawn with a fixed seed, in eval mode, the target matrices' weights (the only
  tensors asking for gradients), and ``batches`` training batches drawn with the allocator's
  ``seed`` (not the training seed);
- **spending**: ``per = "block"`` sums (``block_score``) a block's matrix scores into a block
  score and spends the budget by block scores exactly as budgeted GeLoRA does; ``per =
  "matrix"`` spends it by the matrix scores themselves, so ranks move across matrix types
  (attention, MLP) as well as across blocks (``Allocator.spend`` -> ``allocate_ranks``);
- **cache**: ``$GELORA_CACHE/allocator_scores/<key>.json`` (``gelora.cache_entries``), the key a
  sha256 over the allocator's class and settings (``cache_settings``), its seed and batch count,
  the target matrices, the weights (the redrawn head included), the drawn batches' tensors and
  the device: the other seeds of a sweep, and the allocator's shuffled control, reuse the scores
  the first job computed;
- **timing**: ``prepare_timing`` (``<name>_s``) in the record's ``timings``;
- **record**: ``summary()`` (the record's ``method_summary``): per-matrix and per-block scores,
  batches, seeds, draws, the cache's outcome, and the allocator's own facts (``facts``);
- **seeds** (issue 46): ``score_draws`` averages each matrix's score over that many batch draws
  (seeds ``seed, seed + 1, ...``), each draw cached on its own; ``stability_seeds`` (0: off) also
  plans on that many disjoint sets of draws and records the plans (``summary()["plan_draws"]``),
  what ``gelora-table``'s rank-plan section counts. Both cost forward/backward passes: draws x
  (1 + extra plans) score computations, recorded in the summary.

The shuffled control (``gelora.ranks.controls.ShuffledPolicy``) of any such allocator prepares
through it, so it reuses the same cached scores.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gelora.assets import cache_root
from gelora.cache_entries import (
    EntryLookup,
    cache_outcome,
    key_digest,
    read_entry,
    weights_digest,
    write_entry,
)
from gelora.errors import ConfigError
from gelora.ranks.allocator import Allocator, blocks_of, check_per, require_budget
from gelora.ranks.budget import Budget
from gelora.ranks.plan import RankPlan, TargetModule
from gelora.ranks.scaling import Scaling
from gelora.ranks.scoring_inputs import (
    ScoreInputs,
    batches_digest,
    draw_batches,
    scoring_model,
)

log = logging.getLogger(__name__)

CACHE_FOLDER = "allocator_scores"


def _count(value: Any, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"rank_policy.{key} must be an integer >= {minimum}, got {value!r}")
    return value


class ScoringAllocator(Allocator):
    """An allocator whose scores come from the frozen model (``score``), computed in ``prepare``.

    A subclass sets ``name`` and writes ``score``; ``per`` (``block`` or ``matrix``) may be set by
    the class and overridden by ``rank_policy.per``. ``needs_batches = False`` for a score that
    reads only the weights (no batches drawn, no seed in its key).

    Args:
        batches: training batches per draw.
        seed: the first draw's seed (draws the batches and nothing else); not the training seed.
        cache: keep and reuse scores under ``$GELORA_CACHE/allocator_scores/``.
        score_draws: draws whose scores are averaged (seeds ``seed, seed + 1, ...``).
        stability_seeds: how many plans on disjoint sets of draws to record (0: none; the first
            is the run's plan), for the plan-stability report.
        per: ``block`` or ``matrix``; ``None``: the class's.
    """

    needs_budget = True
    needs_batches = True
    score_version = 1  # bump when the batch draw, the head's redraw or ``score`` changes

    def __init__(
        self,
        batches: int = 8,
        seed: int = 0,
        cache: bool = True,
        score_draws: int = 1,
        stability_seeds: int = 0,
        per: str | None = None,
        scaling: Scaling | None = None,
    ):
        super().__init__(scaling)
        self.batches = _count(batches, "batches", 1)
        self.score_draws = _count(score_draws, "score_draws", 1)
        self.stability_seeds = _count(stability_seeds, "stability_seeds", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"rank_policy.seed must be an integer, got {seed!r}")
        self.seed = seed
        self.cache = cache
        self.per = check_per(per if per is not None else type(self).per)
        self.head_modules: tuple[str, ...] = ()
        self.target_scores: dict[str, float] | None = None
        self.facts: dict[str, Any] = {}

    @property
    def prepare_timing(self) -> str:
        return f"{self.name}_s"

    def score(self, inputs: ScoreInputs) -> list[float]:
        """One score (finite, >= 0) per target matrix, in target order."""
        raise NotImplementedError(f"{type(self).__name__} has no score")

    def block_score(self, scores: Sequence[float]) -> float:
        """A block's score from its matrices' scores (``per = "block"``): their sum."""
        return float(sum(scores))

    def cache_settings(self) -> dict[str, Any]:
        """Settings beyond the batches that change ``score``'s output (in the cache key)."""
        return {}

    def own_facts(self) -> dict[str, Any]:
        """What the record keeps of the allocator's own choices (probes, thresholds)."""
        return {}

    def use_head(self, head_modules: Sequence[str]) -> None:
        """The modules of the new head (``make_plan`` tells every allocator that has this)."""
        self.head_modules = tuple(head_modules)

    def prepare(
        self,
        model: nn.Module,
        train_batches: Callable[[], Iterable[dict[str, torch.Tensor]]],
        targets: Sequence[TargetModule],
        budget: Budget | None,
    ) -> None:
        """The target scores (averaged over the draws), from the cache where a run before
        computed them; with ``stability_seeds``, the plans of the other sets of draws too."""
        try:
            budget = require_budget(budget, self.name)
        except ValueError as error:
            raise ConfigError(f"method={self.name}: {error}") from error
        started = time.perf_counter()
        scores, draws = self._scores_over(model, train_batches, targets, self.seed)
        self.target_scores = {t.name: s for t, s in zip(targets, scores, strict=True)}
        self.facts = {
            "per": self.per,
            "batches": draws[0]["batches"],
            "batch_seed": self.seed,
            "score_draws": self.score_draws,
            "draws": draws,
            "cache": draws[0]["cache"],
            "score_s": round(time.perf_counter() - started, 3),
            **self.own_facts(),
        }
        if self.stability_seeds:
            self.facts["plan_draws"] = self._stability(model, train_batches, targets, budget)

    def _scores_over(self, model, train_batches, targets, first_seed: int):
        """The matrix scores averaged over ``score_draws`` draws from ``first_seed`` on, and
        what each draw was (seed, batches, cache outcome)."""
        totals = [0.0] * len(targets)
        draws = []
        for seed in range(first_seed, first_seed + self.score_draws):
            scores, draw = self._draw_scores(model, train_batches, targets, seed)
            totals = [total + s for total, s in zip(totals, scores, strict=True)]
            draws.append(draw)
        return [total / self.score_draws for total in totals], draws

    def _draw_scores(self, model, train_batches, targets, seed: int):
        batches = draw_batches(train_batches, seed, self.batches) if self.needs_batches else []
        with scoring_model(model, self.head_modules, targets) as weights:
            key = self._cache_key(model, weights, batches, targets, seed)
            path = Path(cache_root()) / CACHE_FOLDER / f"{key_digest(key)}.json"
            found = EntryLookup(None, "miss")
            if self.cache:
                found = read_entry(path, key, self.score_version, "scores", self.name)
            if found.payload is not None:
                scores = [float(s) for s in found.payload]
                log.info("%s scores reused from the cache (%s)", self.name, path.name)
            else:
                started = time.perf_counter()
                inputs = ScoreInputs(model, tuple(targets), tuple(weights), tuple(batches), seed)
                scores = self._checked(self.score(inputs), targets)
                log.info(
                    "%s scores: %d matrices on %d batches in %.1f s",
                    self.name, len(targets), len(batches), time.perf_counter() - started,
                )  # fmt: skip
                if self.cache:
                    write_entry(path, key, self.score_version, "scores", scores)
        cache = {"outcome": "off"}
        if self.cache:
            cache = {"outcome": cache_outcome(found), "key": key_digest(key)}
            cache["path"] = f"$GELORA_CACHE/{CACHE_FOLDER}/{path.name}"
        return scores, {"seed": seed, "batches": len(batches), "cache": cache}

    def _cache_key(self, model, weights, batches, targets, seed: int) -> dict[str, Any]:
        key: dict[str, Any] = {"allocator": type(self).__name__, "weights": weights_digest(model)}
        if self.needs_batches:
            key |= {"batches": batches_digest(batches), "n_batches": len(batches), "seed": seed}
        key |= {"targets": [t.name for t in targets], "device": str(weights[0].device)}
        return key | self.cache_settings()

    def _checked(self, scores: Sequence[float], targets: Sequence[TargetModule]) -> list[float]:
        scores = [float(s) for s in scores]
        if len(scores) != len(targets):
            raise ValueError(f"{self.name}: {len(scores)} scores for {len(targets)} matrices")
        if any(not s >= 0 or s == float("inf") for s in scores):
            raise ValueError(f"{self.name}: scores must be finite and >= 0, got {scores}")
        return scores

    def _stability(self, model, train_batches, targets, budget: Budget) -> dict[str, Any]:
        """Plans on ``stability_seeds`` disjoint sets of ``score_draws`` draws (the first is the
        run's own), per-matrix ranks in target order; what they cost."""
        started = time.perf_counter()
        plans, seeds, names = [], [], [t.name for t in targets]
        for k in range(self.stability_seeds):
            first = self.seed + k * self.score_draws
            if k == 0:
                scores = [self.target_scores[t.name] for t in targets]
            else:
                scores, _ = self._scores_over(model, train_batches, targets, first)
            plan = self._spend(targets, budget, dict(zip(names, scores, strict=True)))
            plans.append([plan.ranks.get(t.name, 0) for t in targets])
            seeds.append(first)
        return {
            "first_seeds": seeds,
            "targets": names,
            "ranks": plans,
            "distinct_plans": len({tuple(p) for p in plans}),
            "extra_score_computations": (self.stability_seeds - 1) * self.score_draws,
            "seconds": round(time.perf_counter() - started, 3),
        }

    def scores(
        self, targets: Sequence[TargetModule], intrinsic_dims: Sequence[float] | None = None
    ) -> list[float]:
        """The prepared scores: one per block (index = block; 0 for a block without targets)
        for ``per = "block"``, else one per target."""
        if self.target_scores is None:
            raise RuntimeError(f"{type(self).__name__}.plan needs prepare first")
        return self._per(targets, self.target_scores)

    def block_scores(self, targets: Sequence[TargetModule]) -> list[float]:
        """One score per block (index = block), whatever ``per`` spends by."""
        if self.target_scores is None:
            raise RuntimeError(f"{type(self).__name__}.plan needs prepare first")
        return self._block_scores(targets, self.target_scores)

    def _block_scores(self, targets, by_name: dict[str, float]) -> list[float]:
        blocks = blocks_of(targets)
        scores = [0.0] * (blocks[-1] + 1)
        for block in blocks:
            scores[block] = self.block_score([by_name[t.name] for t in targets if t.block == block])
        return scores

    def _per(self, targets: Sequence[TargetModule], by_name: dict[str, float]) -> list[float]:
        if self.per == "matrix":
            return [by_name[t.name] for t in targets]
        return self._block_scores(targets, by_name)

    def _spend(self, targets, budget: Budget, by_name: dict[str, float]) -> RankPlan:
        scores = self._per(targets, by_name)
        shown = "block scores" if self.per == "block" else "matrix scores"
        settings = ", ".join(f"{k}={v}" for k, v in self.cache_settings().items())
        named = f"{self.name} ({settings})" if settings else self.name
        note = f"{named}: {shown} " + ", ".join(f"{s:.4g}" for s in scores)
        return self.spend(targets, budget, scores, notes=[note], per=self.per)

    def plan(
        self,
        targets: Sequence[TargetModule],
        intrinsic_dims: Sequence[float] | None = None,
        budget: Budget | None = None,
    ) -> RankPlan:
        budget = require_budget(budget, self.name)
        if self.target_scores is None:
            raise RuntimeError(f"{type(self).__name__}.plan needs prepare first")
        self.facts["block_scores"] = self.block_scores(targets)
        return self._spend(targets, budget, self.target_scores)

    def summary(self) -> dict[str, Any]:
        """The scores and what they cost: batches, seeds, draws, the cache's outcome."""
        return {"allocator": self.name, **self.facts, "target_scores": self.target_scores}
