"""Gradient allocators: a budget shared by block scores read off the task loss's gradients.

Before any adapter trains, the frozen pretrained model with its new head (redrawn with a fixed
seed, ``HEAD_SEED``, so the plan does not depend on the training seed that drew the run's head)
computes the task's loss (the model's own ``.loss``, as training does) on ``batches`` training
batches drawn with the allocator's ``seed`` (which so changes the plan only through the
batches). The gradient w.r.t. every target weight matrix gives the matrix a score, a block's
matrices give the block a score, and the budget is spent by those block scores exactly as
budgeted GeLoRA spends it (``BudgetedPolicy.spend`` -> ``allocate_ranks``: one rank per matrix
first, the rest in proportion to the block's score, largest remainders; so at equal budget the
rows differ from ``gelora_budget`` only in the block scores). Dropout is off (``eval``), so a
score is a function of the weights and the batches only.

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

Scores are cached like the ID profile (``gelora.cache_entries``): ``$GELORA_CACHE/
allocator_scores/<key>.json``, the key a sha256 over the allocator, its seed and batch count, the
target matrices, the weights (the redrawn head included), the drawn batches' tensors and the
device: the other seeds of a sweep, and the allocator's shuffled control, reuse the scores the
first job computed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
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
from gelora.methods.ours import LoRALayersMethod
from gelora.ranks.budget import Budget
from gelora.ranks.plan import RankPlan, TargetModule
from gelora.ranks.policies import BudgetedPolicy, blocks_of, require_budget
from gelora.ranks.scaling import Scaling

log = logging.getLogger(__name__)

# Bump when the batch draw, the head's redraw, the gradients or a score changes its output.
SCORE_CODE_VERSION = 1
CACHE_FOLDER = "allocator_scores"
HEAD_SEED = 0  # the new head the scores see: fixed, so neither seed moves it


def draw_batches(
    train_batches: Callable[[], Iterable[dict]], seed: int, n_batches: int
) -> list[dict[str, torch.Tensor]]:
    """``n_batches`` training batches of the run's batch size, rows drawn without replacement
    with ``seed`` (not the training seed; the same on every process), collated as training
    collates them. Fewer when the split holds fewer rows."""
    loader = train_batches()
    dataset, collate = getattr(loader, "dataset", None), getattr(loader, "collate_fn", None)
    size = getattr(getattr(loader, "batch_sampler", None), "batch_size", None) or getattr(
        loader, "batch_size", None
    )
    if dataset is None or collate is None or not size:
        raise ValueError("the training loader has no dataset, collate_fn and batch size to draw")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    rows = order[: n_batches * size]
    return [
        collate([dataset[i] for i in rows[start : start + size]])
        for start in range(0, len(rows), size)
    ]


def batches_digest(batches: Sequence[dict[str, torch.Tensor]]) -> str:
    """sha256 of the batches' tensors (keys, dtypes, shapes, values), in order."""
    import hashlib

    digest = hashlib.sha256()
    for batch in batches:
        for key in sorted(batch):
            data = torch.as_tensor(batch[key]).detach().cpu().contiguous()
            digest.update(f"{key}|{data.dtype}|{tuple(data.shape)}".encode())
            digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


@torch.no_grad()
def redraw_head(model: nn.Module, head_modules: Sequence[str], seed: int) -> None:
    """Draw the new head's weights with ``seed``, as Hugging Face draws a new head: linear and
    embedding weights normal with std ``config.initializer_range`` (0.02), biases 0, norms 1."""
    std = float(getattr(getattr(model, "config", None), "initializer_range", 0.02))
    generator = torch.Generator().manual_seed(seed)
    for name in head_modules:
        for module in model.get_submodule(name).modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                drawn = torch.empty(module.weight.shape).normal_(0.0, std, generator=generator)
                module.weight.copy_(drawn)
            if isinstance(module, nn.LayerNorm) and module.weight is not None:
                module.weight.fill_(1.0)
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()


@contextmanager
def scoring_model(
    model: nn.Module, head_modules: Sequence[str], targets: Sequence[TargetModule]
) -> Iterator[list[torch.Tensor]]:
    """``model`` in eval mode, its head redrawn with ``HEAD_SEED``, only the target weights asking
    for gradients (yielded, in target order); all restored afterwards."""
    head = {name: model.get_submodule(name) for name in head_modules}
    saved = {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in head.items()}
    wanted = {name: p.requires_grad for name, p in model.named_parameters()}
    was_training = model.training
    weights = [model.get_submodule(t.name).weight for t in targets]
    try:
        model.eval()
        model.requires_grad_(False)
        for weight in weights:
            weight.requires_grad_(True)
        redraw_head(model, head_modules, HEAD_SEED)
        yield weights
    finally:
        for name, module in head.items():
            module.load_state_dict(saved[name])
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(wanted[name])
        model.train(was_training)


def batch_gradients(
    model: nn.Module, weights: Sequence[torch.Tensor], batches: Iterable[dict]
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Per batch, the gradient of the model's loss (the task's) w.r.t. each of ``weights``."""
    device = weights[0].device
    for batch in batches:
        inputs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        loss = model(**inputs).loss
        yield torch.autograd.grad(loss, list(weights))


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


def fisher_scores(
    model: nn.Module, weights: Sequence[torch.Tensor], batches: Sequence[dict]
) -> list[float]:
    """Per weight matrix: the mean over ``batches`` of the squared loss gradient, summed over
    the matrix's entries (the trace of its diagonal empirical Fisher)."""
    totals = [0.0] * len(weights)
    for grads in batch_gradients(model, weights, batches):
        for j, grad in enumerate(grads):
            totals[j] += float(grad.double().pow(2).sum())
    return [total / len(batches) for total in totals]


def gradient_spectrum_scores(
    model: nn.Module, weights: Sequence[torch.Tensor], batches: Sequence[dict]
) -> list[float]:
    """Per weight matrix: the effective rank of its loss gradient accumulated (summed) over
    ``batches``."""
    summed = [torch.zeros_like(w, dtype=torch.float64) for w in weights]
    for grads in batch_gradients(model, weights, batches):
        for total, grad in zip(summed, grads, strict=True):
            total += grad.double()
    return [effective_rank(total) for total in summed]


class _Spender(BudgetedPolicy):
    """``BudgetedPolicy.spend`` under an allocator's name."""

    needs_intrinsic_dims = False

    def __init__(self, name: str, scaling: Scaling):
        super().__init__(scaling)
        self.name = name


class GradientAllocator(LoRALayersMethod):
    """A ``Method``: per-target gradient scores in ``prepare``, then budgeted GeLoRA's spending
    of the budget by their block scores in ``plan`` (needs a budget).

    Args:
        batches: training batches the scores average over.
        seed: draws those batches (and nothing else); not the training seed.
        cache: keep and reuse scores under ``$GELORA_CACHE/allocator_scores/``.
    """

    name: str
    needs_intrinsic_dims = False
    needs_budget = True
    prepare_timing: str

    def __init__(
        self, batches: int = 8, seed: int = 0, cache: bool = True, scaling: Scaling | None = None
    ):
        if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
            raise ValueError(f"rank_policy.batches must be an integer >= 1, got {batches!r}")
        self.batches = batches
        self.seed = seed
        self.cache = cache
        self.scaling = Scaling.of(scaling)
        self.head_modules: tuple[str, ...] = ()
        self.target_scores: dict[str, float] | None = None
        self.facts: dict[str, Any] = {}

    def target_scores_of(
        self, model: nn.Module, weights: Sequence[torch.Tensor], batches: Sequence[dict]
    ) -> list[float]:
        """One score per target weight matrix."""
        raise NotImplementedError

    def block_score(self, scores: Sequence[float]) -> float:
        """A block's score from its matrices' scores."""
        raise NotImplementedError

    def use_head(self, head_modules: Sequence[str]) -> None:
        """The modules of the new head (``make_plan`` tells every method that has this)."""
        self.head_modules = tuple(head_modules)

    def prepare(
        self,
        model: nn.Module,
        train_batches: Callable[[], Iterable[dict[str, torch.Tensor]]],
        targets: Sequence[TargetModule],
        budget: Budget | None,
    ) -> None:
        """The target scores, from the cache when a run before computed the same ones."""
        try:
            require_budget(budget, self.name)
        except ValueError as error:
            raise ConfigError(f"method={self.name}: {error}") from error
        batches = draw_batches(train_batches, self.seed, self.batches)
        with scoring_model(model, self.head_modules, targets) as weights:
            key = {
                "allocator": type(self).__name__,
                "weights": weights_digest(model),
                "batches": batches_digest(batches),
                "n_batches": len(batches),
                "seed": self.seed,
                "targets": [t.name for t in targets],
                "device": str(weights[0].device),
            }
            path = Path(cache_root()) / CACHE_FOLDER / f"{key_digest(key)}.json"
            found = EntryLookup(None, "miss")
            if self.cache:
                found = read_entry(path, key, SCORE_CODE_VERSION, "scores", self.name)
            if found.payload is not None:
                scores = [float(s) for s in found.payload]
                log.info("%s scores reused from the cache (%s)", self.name, path.name)
            else:
                started = time.perf_counter()
                scores = self.target_scores_of(model, weights, batches)
                log.info(
                    "%s scores: %d matrices on %d batches in %.1f s",
                    self.name,
                    len(targets),
                    len(batches),
                    time.perf_counter() - started,
                )
                if self.cache:
                    write_entry(path, key, SCORE_CODE_VERSION, "scores", scores)
        self.target_scores = {t.name: s for t, s in zip(targets, scores, strict=True)}
        cache = {"outcome": "off"}
        if self.cache:
            cache = {"outcome": cache_outcome(found), "key": key_digest(key)}
            cache["path"] = f"$GELORA_CACHE/{CACHE_FOLDER}/{path.name}"
        self.facts = {"batches": len(batches), "batch_seed": self.seed, "cache": cache}

    def block_scores(self, targets: Sequence[TargetModule]) -> list[float]:
        """One score per block (index = block; 0 for a block without targets)."""
        if self.target_scores is None:
            raise RuntimeError(f"{type(self).__name__}.plan needs prepare first")
        blocks = blocks_of(targets)
        by_block = [[self.target_scores[t.name] for t in targets if t.block == b] for b in blocks]
        scores = [0.0] * (blocks[-1] + 1)
        for block, found in zip(blocks, by_block, strict=True):
            scores[block] = self.block_score(found)
        return scores

    def plan(
        self,
        targets: Sequence[TargetModule],
        intrinsic_dims: Sequence[float] | None = None,
        budget: Budget | None = None,
    ) -> RankPlan:
        budget = require_budget(budget, self.name)
        scores = self.block_scores(targets)
        self.facts["block_scores"] = scores
        note = f"{self.name}: block scores " + ", ".join(f"{s:.4g}" for s in scores)
        return _Spender(self.name, self.scaling).spend(targets, budget, scores, notes=[note])

    def summary(self, model: nn.Module) -> dict[str, Any] | None:
        """The scores and what they cost: batches, their seed, the cache's outcome."""
        return {"allocator": self.name, **self.facts, "target_scores": self.target_scores}


class FisherAllocator(GradientAllocator):
    """``fisher``: block score = the trace of the block's diagonal empirical Fisher (EWC)."""

    name = "fisher"
    prepare_timing = "fisher_s"

    def target_scores_of(self, model, weights, batches) -> list[float]:
        return fisher_scores(model, weights, batches)

    def block_score(self, scores: Sequence[float]) -> float:
        return float(sum(scores))


class GradientSpectrumAllocator(GradientAllocator):
    """``gradient_spectrum``: block score = the mean effective rank of its matrices' gradients."""

    name = "gradient_spectrum"
    prepare_timing = "gradient_spectrum_s"

    def target_scores_of(self, model, weights, batches) -> list[float]:
        return gradient_spectrum_scores(model, weights, batches)

    def block_score(self, scores: Sequence[float]) -> float:
        return float(sum(scores) / len(scores)) if scores else 0.0
