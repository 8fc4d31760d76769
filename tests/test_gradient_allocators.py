"""The gradient allocators (fisher, gradient_spectrum) and their shuffled controls: the scores
against hand computations, the budget spent as budgeted GeLoRA spends it, the shuffle, the
seeds, the score cache, and both rows end to end."""

from __future__ import annotations

import copy
import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from gelora.models import find_target_modules
from gelora.ranks.budget import Budget, rank_unit
from gelora.ranks.controls import ShuffledPolicy
from gelora.ranks.gradients import FisherAllocator, GradientSpectrumAllocator, effective_rank
from gelora.ranks.scoring_inputs import draw_batches
from tests.helpers import TINY, gelora_train, run_in_process

HEAD = ("bert.pooler", "classifier")
RELATIVE = [
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GELORA_CACHE", str(tmp_path / "cache"))


def _rows(n: int = 24) -> list[dict]:
    generator = torch.Generator().manual_seed(3)
    return [
        {
            "input_ids": torch.randint(5, 100, (10,), generator=generator),
            "attention_mask": torch.ones(10, dtype=torch.long),
            "labels": torch.tensor(i % 3),
        }
        for i in range(n)
    ]


def _collate(rows: list[dict]) -> dict:
    return {key: torch.stack([row[key] for row in rows]) for key in rows[0]}


def _train_batches(rows: list[dict] | None = None, batch_size: int = 4):
    rows = rows if rows is not None else _rows()
    return lambda: DataLoader(rows, batch_size=batch_size, shuffle=True, collate_fn=_collate)


def _prepared(allocator, model, budget=None, **kwargs):
    budget = budget or Budget(rank=2)
    targets = find_target_modules(model, "bert.encoder.layer", RELATIVE)
    allocator.use_head(HEAD)
    allocator.prepare(model, _train_batches(**kwargs), targets, budget)
    return targets


def test_fisher_score_is_the_mean_squared_gradient_summed_over_the_matrix(tiny_bert):
    allocator = FisherAllocator(batches=2, cache=False)
    targets = _prepared(allocator, tiny_bert)
    batches = draw_batches(_train_batches(), 0, 2)
    by_hand = copy.deepcopy(tiny_bert).eval()
    for name in HEAD:  # the allocator sees the head drawn with its fixed seed
        by_hand.get_submodule(name).load_state_dict(_redrawn_head(tiny_bert, name))
    name = targets[4].name  # block 0's intermediate.dense
    weight = by_hand.get_submodule(name).weight
    squares = []
    for batch in batches:
        logits = by_hand(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        loss = F.cross_entropy(logits.logits, batch["labels"])
        (grad,) = torch.autograd.grad(loss, [weight])
        squares.append(float((grad.double() ** 2).sum()))
    assert allocator.target_scores[name] == pytest.approx(sum(squares) / 2, rel=1e-6)
    blocks = allocator.block_scores(targets)
    in_block_1 = [allocator.target_scores[t.name] for t in targets if t.block == 1]
    assert blocks[1] == pytest.approx(sum(in_block_1))


def _redrawn_head(model, name):
    from gelora.ranks.scoring_inputs import HEAD_SEED, redraw_head

    twin = copy.deepcopy(model)
    redraw_head(twin, HEAD, HEAD_SEED)
    return twin.get_submodule(name).state_dict()


def test_effective_rank_is_exp_of_the_singular_value_entropy():
    assert effective_rank(torch.outer(torch.arange(1.0, 5.0), torch.ones(3))) == pytest.approx(1)
    assert effective_rank(torch.eye(6)) == pytest.approx(6)
    p = torch.tensor([0.75, 0.25], dtype=torch.float64)
    expected = math.exp(float(-(p * p.log()).sum()))
    assert effective_rank(torch.diag(torch.tensor([3.0, 1.0]))) == pytest.approx(expected)
    assert effective_rank(torch.zeros(3, 3)) == 0.0


@pytest.mark.parametrize("kind", [FisherAllocator, GradientSpectrumAllocator])
@pytest.mark.parametrize("budget", [Budget(rank=2), Budget(rank=5), Budget(params=9_000)])
def test_the_plan_spends_the_budget_within_one_rank_unit(tiny_bert, kind, budget):
    allocator = kind(batches=3, cache=False)
    targets = _prepared(allocator, tiny_bert, budget)
    plan = allocator.plan(targets, None, budget)
    spent, allowed = plan.trainable_adapter_params, budget.n_params(targets)
    assert allowed - rank_unit(targets) < spent <= allowed
    assert min(plan.ranks.values()) >= 1 and len(plan.ranks) == len(targets)


@pytest.mark.parametrize("kind", [FisherAllocator, GradientSpectrumAllocator])
def test_the_shuffled_control_moves_the_same_ranks(tiny_bert, kind):
    budget = Budget(rank=6)
    allocator = kind(batches=3, cache=False)
    targets = _prepared(allocator, tiny_bert, budget)
    original = allocator.plan(targets, None, budget)
    control = ShuffledPolicy(allocator=kind(batches=3, cache=False), seed=1)
    assert control.name == f"{allocator.name}_shuffled"
    assert control.prepare_timing == allocator.prepare_timing
    _prepared(control, tiny_bert, budget)
    shuffled = control.plan(targets, None, budget)
    n_blocks = 3
    assert Counter(shuffled.block_ranks(n_blocks)) == Counter(original.block_ranks(n_blocks))
    assert shuffled.trainable_adapter_params == original.trainable_adapter_params
    assert "shuffled" in control.summary()


def test_the_plan_ignores_the_training_seed_and_follows_its_own_seed_through_the_batches(
    tiny_bert,
):
    scores = []
    for training_seed in (0, 1):
        model = copy.deepcopy(tiny_bert)
        torch.manual_seed(training_seed)  # the run's head, dropout, shuffle: none matter
        torch.nn.init.normal_(model.classifier.weight)
        allocator = FisherAllocator(batches=2, seed=0, cache=False)
        _prepared(allocator, model)
        scores.append(allocator.target_scores)
    assert scores[0] == scores[1]
    other = FisherAllocator(batches=2, seed=5, cache=False)
    _prepared(other, copy.deepcopy(tiny_bert))
    assert other.target_scores != scores[0]
    assert [b["input_ids"].tolist() for b in draw_batches(_train_batches(), 5, 2)] != [
        b["input_ids"].tolist() for b in draw_batches(_train_batches(), 0, 2)
    ]
    # the same rows in one batch (another order) give the same scores whatever the seed
    rows = _rows(8)
    same = [FisherAllocator(batches=1, seed=s, cache=False) for s in (0, 5)]
    for allocator in same:
        _prepared(allocator, copy.deepcopy(tiny_bert), rows=rows, batch_size=8)
    for name, score in same[0].target_scores.items():
        assert same[1].target_scores[name] == pytest.approx(score, rel=1e-5)


def test_prepare_restores_the_model(tiny_bert):
    before = {k: v.clone() for k, v in tiny_bert.state_dict().items()}
    tiny_bert.train()
    tiny_bert.bert.embeddings.requires_grad_(False)
    _prepared(GradientSpectrumAllocator(batches=2, cache=False), tiny_bert)
    assert tiny_bert.training
    assert all(torch.equal(before[k], v) for k, v in tiny_bert.state_dict().items())
    assert not any(p.requires_grad for p in tiny_bert.bert.embeddings.parameters())
    assert tiny_bert.classifier.weight.requires_grad


def test_a_second_run_reuses_the_cached_scores(tiny_bert, caplog):
    first = FisherAllocator(batches=2)
    _prepared(first, tiny_bert)
    assert first.facts["cache"]["outcome"] == "computed"
    second = FisherAllocator(batches=2)
    with caplog.at_level("INFO"):
        _prepared(second, tiny_bert)
    assert second.facts["cache"]["outcome"] == "reused"
    assert second.facts["cache"]["key"] == first.facts["cache"]["key"]
    assert second.target_scores == first.target_scores
    assert "fisher scores reused from the cache" in caplog.text
    third = FisherAllocator(batches=3)  # another setting: another key
    _prepared(third, tiny_bert)
    assert third.facts["cache"]["outcome"] == "computed"


def test_both_allocators_and_a_shuffle_run_end_to_end(tmp_path):
    budget = ["budget.rank=2", "logger=none", *TINY]
    fisher = run_in_process(tmp_path / "fisher", "method=fisher", *budget)
    assert fisher["status"] == "completed" and fisher["timings"]["fisher_s"] > 0
    summary = fisher["method_summary"]
    assert summary["batches"] >= 1 and len(summary["block_scores"]) == 2
    assert summary["cache"]["outcome"] == "computed"
    shuffled = run_in_process(tmp_path / "shuffled", "method=fisher_shuffled", *budget)
    assert shuffled["method_summary"]["cache"]["outcome"] == "reused"  # the same scores
    assert sorted(shuffled["block_ranks"]) == sorted(fisher["block_ranks"])
    spectrum = run_in_process(tmp_path / "spectrum", "method=gradient_spectrum", *budget)
    assert spectrum["status"] == "completed" and "gradient_spectrum_s" in spectrum["timings"]
    assert spectrum["planned_adapter_params"] <= spectrum["budget_params"]


def test_no_budget_is_a_one_line_error(tmp_path):
    done = gelora_train(tmp_path / "run", "method=gradient_spectrum", "logger=none", *TINY)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "needs a budget" in line]
    assert len(errors) == 1 and "Traceback" not in done.stderr
