"""GeLoRA's plan as options (issue 26, item 3): noise-aware gaps and the budget's remainder rule.

Every expected plan is worked out by hand in the comments; the defaults are pinned to the plans
the paper's rule gave before the options existed.
"""

from __future__ import annotations

import hashlib
import json
from math import hypot

import pytest

from gelora.geometry.id_profile import IDProfile, LayerID
from gelora.ranks import (
    Budget,
    GeLoRAPolicy,
    MeasuredIDs,
    ShuffledPolicy,
    TargetModule,
    allocate_ranks,
    noise_aware_gaps,
    rank_unit,
)
from gelora.ranks.sensitivity import rank_sensitivity
from tests.helpers import TINY, gelora_train, run_in_process

# Four blocks of one 8 -> 8 matrix each: a rank costs 16 parameters everywhere.
FOUR = [TargetModule(f"enc.{b}.q", b, 8, 8) for b in range(4)]
# Gaps 2.5, 0.2, 2.3, -1.0: the paper's ranks (offset 1) are 3+1, 1+1, 3+1, 0+1 = 4, 2, 4, 1.
DIMS = [10.0, 12.5, 12.7, 15.0, 14.0]
# Gap spreads sqrt(s_i^2 + s_{i+1}^2): 0.141, 0.224, 0.224, 0.316. Block 1's gap, 0.2, is
# within one of them: noise at k = 1.
STDS = [0.1, 0.1, 0.2, 0.1, 0.3]
BOUNDS = [4, 2, 4, 1]


def block_ranks(policy: GeLoRAPolicy, dims, budget: Budget | None = None) -> list[int]:
    return policy.plan(FOUR, dims, budget).block_ranks(4)


def test_the_gap_spread_is_that_of_a_difference_of_independent_estimates():
    gaps, ignored = noise_aware_gaps(DIMS, STDS, 1.0)
    assert gaps == pytest.approx([2.5, 0.0, 2.3, 0.0])
    assert ignored == [1]  # block 3's gap is negative: not "ignored", just not a gain
    # Equal stds of 0.2: the gap's spread is 0.2 * sqrt(2) = 0.283, so a gap of 0.2 is noise at
    # k = 0.8 (0.226; it would not be against the larger std alone, 0.16) and counts at k = 0.7.
    assert noise_aware_gaps([0.0, 0.2], [0.2, 0.2], 0.8) == ([0.0], [0])
    assert noise_aware_gaps([0.0, 0.2], [0.2, 0.2], 0.7) == (pytest.approx([0.2]), [])


def test_noise_k_zero_is_the_papers_rule_with_or_without_stds():
    assert block_ranks(GeLoRAPolicy(), DIMS) == BOUNDS
    assert block_ranks(GeLoRAPolicy(noise_k=0), MeasuredIDs(DIMS, STDS)) == BOUNDS
    assert block_ranks(GeLoRAPolicy(noise_k=0), MeasuredIDs(DIMS)) == BOUNDS


def test_a_noise_sized_gap_is_ignored_at_one_std():
    plan = GeLoRAPolicy(noise_k=1).plan(FOUR, MeasuredIDs(DIMS, STDS))
    assert plan.block_ranks(4) == [4, 1, 4, 1]  # block 1: gap 0.2 < 0.224 counts as 0
    assert any("blocks 1 lie within noise_k" in note for note in plan.notes)
    # k = 20: 2.5 < 20 * 0.141 and 2.3 < 20 * 0.224: every gap is noise, every block the offset.
    assert block_ranks(GeLoRAPolicy(noise_k=20), MeasuredIDs(DIMS, STDS)) == [1, 1, 1, 1]


def test_budgeted_gap_rule_k0_is_todays_and_k1_drops_the_noise_gap_from_the_shares():
    budget = Budget(rank=4)  # 4 blocks x 4 ranks x 16 = 256 parameters, 16 rank units
    # k = 0: bounds 4+2+4+1 = 11 units, 5 left; shares 5 x gap / 5.0 = 2.5, 0.2, 2.3, 0:
    # floors 2, 0, 2, 0 and the last unit to the largest remainder (.5, block 0).
    today = block_ranks(GeLoRAPolicy(), DIMS, budget)
    assert today == [7, 2, 6, 1]
    assert block_ranks(GeLoRAPolicy(noise_k=0), MeasuredIDs(DIMS, STDS), budget) == today
    # k = 1: bounds 4+1+4+1 = 10, 6 left; shares 6 x (2.5, 0, 2.3, 0) / 4.8 = 3.125, 0, 2.875, 0:
    # floors 3, 0, 2, 0 and the last unit to the largest remainder (.875, block 2).
    assert block_ranks(GeLoRAPolicy(noise_k=1), MeasuredIDs(DIMS, STDS), budget) == [7, 1, 7, 1]


def test_waterfill_gives_the_bounds_at_their_cost_and_uniform_at_a_large_budget():
    waterfill = GeLoRAPolicy(score="waterfill")
    assert block_ranks(waterfill, DIMS, Budget(params=11 * 16)) == BOUNDS
    # One unit more: the lowest block (3, rank 1) rises.
    assert block_ranks(waterfill, DIMS, Budget(rank=3)) == [4, 2, 4, 2]
    # 5 units over the bounds: 3 -> 2, then blocks 1 and 3 tie at 2 (block 1 first): 1 -> 3,
    # 3 -> 3, 1 -> 4, 3 -> 4. Uniform rank 4, as uniform LoRA at budget.rank=4.
    assert block_ranks(waterfill, DIMS, Budget(rank=4)) == [4, 4, 4, 4]
    assert block_ranks(waterfill, DIMS, Budget(rank=10)) == [10, 10, 10, 10]
    # A parameter budget between: 16 units + 15 parameters left over (less than one unit).
    assert block_ranks(waterfill, DIMS, Budget(params=17 * 16 + 15)) == [5, 4, 4, 4]


def test_waterfill_with_noise_aware_bounds():
    # Bounds 4, 1, 4, 1 (k = 1) at their cost of 10 units; 3 more: 1 -> 2, 3 -> 2, 1 -> 3.
    policy = GeLoRAPolicy(score="waterfill", noise_k=1)
    dims = MeasuredIDs(DIMS, STDS)
    assert block_ranks(policy, dims, Budget(params=10 * 16)) == [4, 1, 4, 1]
    assert block_ranks(policy, dims, Budget(params=13 * 16)) == [4, 3, 4, 2]
    assert block_ranks(policy, dims, Budget(rank=4)) == [4, 4, 4, 4]


def test_id_rule_shares_the_rest_in_proportion_to_output_ids():
    # Bounds 11 units, 5 left; output IDs 12.5, 12.7, 15.0, 14.0 (sum 54.2): shares
    # 5 x ID / 54.2 = 1.153, 1.172, 1.384, 1.292: floors 1 each, the last unit to block 2 (.384).
    assert block_ranks(GeLoRAPolicy(score="id"), DIMS, Budget(rank=4)) == [5, 3, 6, 2]


def test_waterfill_spends_the_budget_as_the_proportional_rule_does():
    # Two shapes per block, so per-target costs differ (16 and 40 parameters per rank).
    targets = [
        TargetModule(f"enc.{b}.{m}", b, i, o)
        for b in range(3)
        for m, i, o in (("q", 8, 8), ("ffn", 8, 32))
    ]
    unit = rank_unit(targets)
    for n_params in (168, 200, 397, 1000, 4321):
        for allocation in ("proportional", "waterfill"):
            ranks = allocate_ranks(targets, n_params, [1.0] * 6, None, allocation)
            spent = sum(r * t.lora_params(1) for r, t in zip(ranks, targets, strict=True))
            assert n_params - unit < spent <= n_params, (allocation, n_params, ranks)
    with pytest.raises(ValueError, match="allocation must be one of proportional, waterfill"):
        allocate_ranks(targets, 1000, [1.0] * 6, None, "greedy")
    with pytest.raises(ValueError, match="more than the budget"):
        allocate_ranks(targets, 100, [1.0] * 6, None, "waterfill")


# The plans of HEAD before these options (commit cdac9a5), over 3 profiles x 5 budgets x 3 scores
# x 2 offsets on 6 blocks of 3 matrices: the sha256 of their sorted JSON.
PINNED_PROFILES = {
    "default_like": [9.1, 10.4, 11.0, 10.2, 12.3, 15.6, 14.0],
    "steep": [3.0, 7.5, 7.6, 12.9, 12.0, 20.2, 21.0],
    "flat": [5.0] * 7,
}
PINNED_BUDGETS = {
    "none": None,
    "rank2": Budget(rank=2),
    "rank6": Budget(rank=6),
    "params3000": Budget(params=3000),
    "params500": Budget(params=500),
}
PINNED_SHA256 = "f5c9c453f31f594ff61e897aa584ec1718985afdaab2875e21915b15c236eefc"


@pytest.mark.parametrize("wrap", [list, lambda dims: MeasuredIDs(dims, [0.5] * len(dims))])
def test_default_plans_are_bit_for_bit_those_before_the_options(wrap):
    targets = [
        TargetModule(f"enc.{b}.{m}", b, i, o)
        for b in range(6)
        for m, i, o in (("q", 8, 8), ("k", 8, 8), ("ffn", 8, 32))
    ]
    plans = {
        f"{pn}|{bn}|{score}|{offset}": GeLoRAPolicy(offset=offset, score=score)
        .plan(targets, wrap(profile), budget)
        .to_dict()
        for pn, profile in PINNED_PROFILES.items()
        for bn, budget in PINNED_BUDGETS.items()
        for score in ("gap", "id", "uniform")
        for offset in (0, 1)
    }
    digest = hashlib.sha256(json.dumps(plans, sort_keys=True).encode()).hexdigest()
    assert digest == PINNED_SHA256
    # Two of them in the open, so a mismatch can be read.
    assert [a["rank"] for a in plans["default_like|rank2|gap|1"]["adapters"]] == [
        *[2] * 3,
        *[1] * 6,
        *[3] * 3,
        *[4] * 3,
        *[1] * 3,
    ]
    assert [a["rank"] for a in plans["steep|none|gap|1"]["adapters"]] == [
        r for r in (6, 2, 7, 1, 10, 2) for _ in range(3)
    ]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: GeLoRAPolicy(score="largest"), "rank_policy.score must be one of gap, id, "),
        (lambda: GeLoRAPolicy(noise_k=-1), "rank_policy.noise_k must be a finite number >= 0"),
        (lambda: GeLoRAPolicy(noise_k=float("nan")), "rank_policy.noise_k must be a finite"),
        (lambda: GeLoRAPolicy(noise_k="1"), "rank_policy.noise_k must be a finite"),
        (lambda: ShuffledPolicy(score="largest"), "rank_policy.score must be one of"),
        (
            lambda: GeLoRAPolicy(noise_k=1).plan(FOUR, DIMS),
            r"rank_policy.noise_k=1 needs .* set estimator.n_resamples to 2 or more",
        ),
        (
            lambda: GeLoRAPolicy(noise_k=1).plan(FOUR, MeasuredIDs(DIMS, [None] * 5)),
            "estimator.n_resamples",
        ),
        (lambda: MeasuredIDs(DIMS, STDS[:3]), "3 ID standard deviations for 5 layers"),
    ],
)
def test_bad_options_are_clear_errors(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_resampled_plans_are_made_with_the_profiles_spread():
    # Two resamples; the main profile's stds are those of the resamples per layer. Layers 1 and
    # 2 move by 0.4 between them, so block 1's gap (0.2) lies well inside its spread (about 0.28
    # or more): noise at k = 1, in the main plan and in each resample's plan.
    resamples = [[10.0, 12.3, 12.5, 15.1, 14.0], [10.0, 12.7, 12.9, 14.9, 14.0]]
    layers = tuple(
        LayerID(i, d, 100, 0, (resamples[0][i], resamples[1][i])) for i, d in enumerate(DIMS)
    )
    profile = IDProfile(layers, "TwoNN()", "subsample")
    dims = MeasuredIDs.of(profile)
    assert dims == DIMS and dims.stds == pytest.approx([s or 0.0 for s in profile.stds])
    assert hypot(profile.stds[1], profile.stds[2]) > 0.25
    policy = GeLoRAPolicy(noise_k=1)
    plan = policy.plan(FOUR, dims)
    assert plan.block_ranks(4) == [4, 1, 4, 1]
    assert GeLoRAPolicy(noise_k=0).plan(FOUR, dims).block_ranks(4) == BOUNDS  # [4, 2, 4, 1]
    sensitivity = rank_sensitivity(policy, FOUR, profile, plan, 4)
    assert sensitivity is not None and sensitivity.n_resamples == 2
    # Each resample's block 1 gap is 0.2 too: planned with the spread, it stays at rank 1 (a
    # resample planned without it would give rank 2 and widen the range to (1, 2)). Resample 1's
    # block 2 gap is 2.0 (12.9 -> 14.9): rank 2 + 1 = 3, the one block that moves.
    assert sensitivity.block_rank_ranges == [(4, 4), (1, 1), (3, 4), (1, 1)]
    assert sensitivity.changed_blocks_per_resample == [0, 1]


# model=tiny_bert's targets (conf/model/tiny_bert.yaml: 2 blocks, width 32, intermediate 64).
TINY_SHAPES = {
    "attention.self.query": (32, 32),
    "attention.self.key": (32, 32),
    "attention.self.value": (32, 32),
    "attention.output.dense": (32, 32),
    "intermediate.dense": (32, 64),
    "output.dense": (64, 32),
}
TINY_TARGETS = [
    TargetModule(f"bert.encoder.layer.{block}.{name}", block, n_in, n_out)
    for block in range(2)
    for name, (n_in, n_out) in TINY_SHAPES.items()
]


def test_a_tiny_run_with_waterfill_trains_the_waterfill_plan(tmp_path):
    run_in_process(  # in process: the record is under test, not the command line
        tmp_path, *TINY, "method=gelora", "budget.rank=2", "rank_policy.score=waterfill"
    )
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "completed"
    assert list(results["ranks"]) == [t.name for t in TINY_TARGETS]
    dims, budget = results["intrinsic_dims"], Budget(rank=2)
    waterfill = GeLoRAPolicy(score="waterfill").plan(TINY_TARGETS, dims, budget).block_ranks(2)
    by_gap = GeLoRAPolicy().plan(TINY_TARGETS, dims, budget).block_ranks(2)
    assert waterfill != by_gap  # the run's own profile tells the two rules apart
    assert results["block_ranks"] == waterfill
    assert results["config"]["rank_policy"]["score"] == "waterfill"


def test_noise_k_without_resamples_is_one_line_naming_the_keys(tmp_path):
    proc = gelora_train(tmp_path, *TINY, "rank_policy.noise_k=1", "estimator.n_resamples=0")
    assert proc.returncode != 0
    assert "rank_policy.noise_k=1" in proc.stderr and "estimator.n_resamples" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_tiny_run_with_noise_aware_gaps_trains_the_noise_aware_plan(tmp_path):
    run_in_process(  # in process: the record is under test, not the command line
        tmp_path, *TINY, "method=gelora", "rank_policy.noise_k=1", "estimator.n_resamples=3"
    )
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "completed"
    stds = [layer["std"] for layer in results["id_profile"]["layers"]]
    assert all(std is not None and std > 0 for std in stds)  # from the 3 resamples
    measured = MeasuredIDs(results["intrinsic_dims"], stds)
    noise_aware = GeLoRAPolicy(noise_k=1).plan(TINY_TARGETS, measured).block_ranks(2)
    plain = GeLoRAPolicy(noise_k=0).plan(TINY_TARGETS, measured).block_ranks(2)
    assert noise_aware != plain  # the spread of the run's own profile moves a rank
    assert results["block_ranks"] == noise_aware
    assert results["config"]["rank_policy"]["noise_k"] == 1
