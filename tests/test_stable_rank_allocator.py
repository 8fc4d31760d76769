"""The stable-rank allocator (SA-LoRA style): the stable rank and SA-LoRA's multipliers on
hand-checked cases, a tiny model whose gradient calibration reverses two blocks, the scores on a
tiny BERT against a reference, its shuffled control, and its row end to end (training and
gelora-plan --emit) from conf/method."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from gelora.ranks import (
    Budget,
    FisherAllocator,
    ShuffledPolicy,
    StableRankAllocator,
    TargetModule,
)
from gelora.ranks.stable_rank import fused_multipliers, range_multipliers, stable_rank
from tests.helpers import TINY, compose_train, gelora_train, run_in_process
from tests.test_allocators import _prepared
from tests.test_gradient_allocators import _own_cache  # noqa: F401

# --- the statistic and the multipliers, by hand ------------------------------------------------


def test_the_stable_rank_is_frobenius_over_spectral_squared():
    # singular values 3, 2, 1: (9 + 4 + 1) / 9
    assert stable_rank(torch.diag(torch.tensor([3.0, 2.0, 1.0]))) == pytest.approx(14 / 9)
    # equal singular values: the rank; rank one: 1, whatever the scale
    assert stable_rank(torch.eye(5) * 7) == pytest.approx(5.0)
    assert stable_rank(torch.outer(torch.tensor([1.0, 2.0]), torch.tensor([3.0, -1.0, 4.0]))) == (
        pytest.approx(1.0)
    )
    # [[1, 1], [0, 1]]: ||W||_F^2 = 3, ||W||_2^2 = (3 + sqrt 5) / 2 (golden ratio squared)
    assert stable_rank(torch.tensor([[1.0, 1.0], [0.0, 1.0]])) == pytest.approx(6 / (3 + 5**0.5))
    assert stable_rank(torch.zeros(3, 2)) == 0.0


def test_sa_loras_multipliers_by_hand():
    # min-max to [0.5, 2]: 1 -> 0.5, 3 -> 2, 2 -> 1.25 (power 1); power 2: 2 -> 0.5 + 1.5 / 4
    assert range_multipliers([1.0, 3.0, 2.0], 0.5, 2.0, 1.0) == pytest.approx([0.5, 2.0, 1.25])
    assert range_multipliers([1.0, 3.0, 2.0], 0.5, 2.0, 2.0)[2] == pytest.approx(0.875)
    assert range_multipliers([4.0, 4.0], 0.5, 2.0, 1.0) == [0.5, 0.5]  # equal: all at the floor
    # blend 0.25 of [0.5, 2] and [2, 0.5]: [0.875, 1.625], mean 1.25 -> [0.7, 1.3]
    assert fused_multipliers([0.5, 2.0], [2.0, 0.5], 0.25, 0.5, 2.0) == pytest.approx([0.7, 1.3])
    # blend 0 of [0.5, 2]: mean 1.25 -> [0.4, 1.6], 0.4 clipped to 0.5
    assert fused_multipliers([0.5, 2.0], [2.0, 0.5], 0.0, 0.5, 2.0) == pytest.approx([0.5, 1.6])


# --- a tiny model where the calibration reverses two blocks --------------------------------------


class TwoBlocks(nn.Module):
    """``y = W1 W0 x``, loss the mean squared error to ``labels``; block 0 is ``W0``, block 1
    ``W1``. ``W0`` = 4 I (stable rank 4), ``W1`` = 0.1 diag(1, 0.1, 0.1, 0.1) (stable rank
    1.03): block 0's stable rank is the larger, but its gradient ``W1^T (dL/dy) x^T`` passes
    through the small ``W1``, so its gradient energy is the smaller."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False)])
        with torch.no_grad():
            self.blocks[0].weight.copy_(4 * torch.eye(4))
            self.blocks[1].weight.copy_(0.1 * torch.diag(torch.tensor([1.0, 0.1, 0.1, 0.1])))

    def forward(self, inputs, labels):
        outputs = self.blocks[1](self.blocks[0](inputs))
        return SimpleNamespace(loss=((outputs - labels) ** 2).mean())


def _two_block_batches():
    generator = torch.Generator().manual_seed(0)
    rows = [
        {
            "inputs": torch.randn(4, generator=generator),
            "labels": torch.randn(4, generator=generator),
        }
        for _ in range(8)
    ]
    collate = lambda batch: {k: torch.stack([row[k] for row in batch]) for k in batch[0]}  # noqa: E731
    return lambda: DataLoader(rows, batch_size=4, collate_fn=collate)


def _two_block_plan(blend: float):
    model = TwoBlocks()
    targets = [TargetModule(f"blocks.{b}", b, 4, 4) for b in (0, 1)]
    allocator = StableRankAllocator(blend=blend, batches=2, cache=False)
    budget = Budget(rank=3)  # 2 x 3 x 8 = 48 parameters: 6 rank units, 1 each, 4 by the scores
    allocator.prepare(model, _two_block_batches(), targets, budget)
    return allocator, allocator.plan(targets, None, budget), model, targets


def test_the_gradient_calibration_reverses_two_blocks():
    alone, plan, model, targets = _two_block_plan(0.0)
    assert [stable_rank(model.get_submodule(t.name).weight) for t in targets] == pytest.approx(
        [4.0, 1.0 + 3 * 0.01], rel=1e-6
    )
    # two matrices min-max to the ends: [2, 0.5], mean 1.25 -> [1.6, 0.4 -> 0.5]
    assert list(alone.target_scores.values()) == pytest.approx([1.6, 0.5])
    assert alone.summary()["batches"] == 0  # blend 0 reads the weights alone
    assert plan.ranks["blocks.0"] > plan.ranks["blocks.1"]

    calibrated, plan, _, _ = _two_block_plan(0.75)
    energies = calibrated.summary()["target_scores"]
    assert calibrated.summary()["batches"] == 2 and calibrated.summary()["blend"] == 0.75
    # the gradient energies run the other way ([0.5, 2]): 0.25 [2, 0.5] + 0.75 [0.5, 2] =
    # [0.875, 1.625], mean 1.25 -> [0.7, 1.3]
    assert list(energies.values()) == pytest.approx([0.7, 1.3])
    assert plan.ranks["blocks.0"] < plan.ranks["blocks.1"]
    assert plan.trainable_adapter_params == 48


# --- a tiny BERT, its shuffle ---------------------------------------------------------------------


def test_stable_rank_scores_on_a_tiny_bert_match_a_reference(tiny_bert):
    allocator = StableRankAllocator(batches=2, cache=False)
    budget = Budget(rank=3)
    targets = _prepared(allocator, tiny_bert, budget)
    # the reference: numpy's singular values, the fisher row's energies on the same draw
    ranks = []
    for target in targets:
        values = np.linalg.svd(tiny_bert.get_submodule(target.name).weight.detach().numpy())[1]
        ranks.append(float((values**2).sum() / values.max() ** 2))
    fisher = FisherAllocator(batches=2, cache=False)  # the same draw, the energy alone
    _prepared(fisher, tiny_bert, budget)
    energies = list(fisher.target_scores.values())
    spectral = range_multipliers(ranks, 0.5, 2.0, 1.0)
    expected = fused_multipliers(spectral, range_multipliers(energies, 0.5, 2.0, 1.0), 0.5, 0.5, 2)
    assert list(allocator.target_scores.values()) == pytest.approx(expected, rel=1e-5)
    assert sum(expected) / len(expected) == pytest.approx(1.0, abs=0.1)  # mean one, then clipped
    plan = allocator.plan(targets, None, budget)
    assert plan.notes[-1].startswith("stable_rank (blend=0.5, min_mult=0.5, max_mult=2.0")
    assert budget.n_params(targets) - 2 * 32 < plan.trainable_adapter_params
    assert plan.trainable_adapter_params <= budget.n_params(targets)


def test_stable_rank_has_its_shuffled_control(tiny_bert):
    budget = Budget(rank=5)
    allocator = StableRankAllocator(batches=2, cache=False)
    targets = _prepared(allocator, tiny_bert, budget)
    original = allocator.plan(targets, None, budget)
    control = ShuffledPolicy(allocator=StableRankAllocator(batches=2, cache=False), seed=2)
    assert control.name == "stable_rank_shuffled" and control.prepare_timing == "stable_rank_s"
    _prepared(control, tiny_bert, budget)
    shuffled = control.plan(targets, None, budget)
    assert Counter(shuffled.ranks.values()) == Counter(original.ranks.values())
    assert shuffled.ranks != original.ranks


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("blend", 1.5, "rank_policy.blend must be a number in [0.0, 1.0], got 1.5"),
        ("min_mult", -1, "rank_policy.min_mult must be a number in [0.0, inf], got -1"),
        ("max_mult", 0.25, "rank_policy.max_mult must be a number in [0.5, inf], got 0.25"),
        ("power", 0, "rank_policy.power must be a number in (0.0, inf], got 0"),
    ],
)
def test_bad_settings_are_one_line_before_any_model_loads(tmp_path, key, value, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        StableRankAllocator(**{key: value})
    done = gelora_train(
        tmp_path / "run", "method=stable_rank", f"rank_policy.{key}={value}", "budget.rank=2",
        "logger=none", *TINY,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if message in line]


# --- the rows end to end --------------------------------------------------------------------------


def test_the_stable_rank_rows_run_end_to_end(tmp_path):
    common = ["budget.rank=2", "logger=none", "estimator.cache=false", *TINY]
    done = run_in_process(tmp_path / "row", "method=stable_rank", *common)
    assert done["status"] == "completed" and "stable_rank_s" in done["timings"]
    summary = done["method_summary"]
    assert summary["allocator"] == "stable_rank" and summary["blend"] == 0.5
    assert summary["source"] == "SA-LoRA's learning-rate multipliers, spent here as rank shares"
    assert done["planned_adapter_params"] <= done["budget_params"]
    shuffled = run_in_process(tmp_path / "shuffled", "method=stable_rank_shuffled", *common)
    assert shuffled["status"] == "completed"
    assert Counter(shuffled["ranks"].values()) == Counter(done["ranks"].values())


def test_gelora_plan_emits_the_stable_rank_plan(tmp_path):
    from peft import LoraConfig

    from gelora.plan.emit import Emit, PlanOptions
    from gelora.plan.lora_config import plan_from_config

    emits = (Emit("peft-bench", tmp_path / "bench"),)
    cfg = compose_train(*TINY, "method=stable_rank", "budget.rank=2", "estimator.cache=false",
                        f"paths.output_dir={tmp_path}")  # fmt: skip
    plan = plan_from_config(cfg, tmp_path / "plan", PlanOptions(False, emits)).plan.plan
    assert plan.policy == "stable_rank"
    experiments = sorted((tmp_path / "bench" / "experiments" / "lora").iterdir())
    assert [e.name.split("-")[2] for e in experiments] == ["stable_rank", "stable_rank"]
    config = LoraConfig.from_pretrained(experiments[0])
    emitted = {name: config.rank_pattern.get(name, config.r) for name in config.target_modules}
    assert Counter(emitted.values()) == Counter(plan.ranks.values())
