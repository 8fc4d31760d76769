"""The rank rule on given IDs, the plan it makes, and parameter counting."""

from __future__ import annotations

import pytest

from gelora.ranks import (
    GeLoRAPolicy,
    RankPlan,
    Scaling,
    TargetModule,
    UniformPolicy,
    gelora_block_ranks,
)


def targets(n_blocks: int = 3) -> list[TargetModule]:
    return [
        TargetModule(f"enc.{b}.{m}", b, i, o)
        for b in range(n_blocks)
        for m, i, o in (("q", 8, 8), ("ffn", 8, 32))
    ]


def test_rule_is_ceil_of_the_id_gap_clipped_at_zero_plus_offset():
    dims = [10.0, 12.2, 12.2, 9.0, 15.0]
    # gaps: +2.2 -> 3, 0 -> 0, -3.2 -> 0, +6 -> 6; then + offset 1
    assert gelora_block_ranks(dims) == [4, 1, 1, 7]
    assert gelora_block_ranks(dims, offset=0) == [3, 0, 0, 6]


def test_policy_plan_gives_each_block_one_rank_and_constant_alpha_over_rank():
    policy = GeLoRAPolicy(offset=1, scaling=Scaling("constant", 32))
    plan = policy.plan(targets(), [10.0, 12.5, 11.0, 11.5])
    assert plan.ranks == {
        "enc.0.q": 4, "enc.0.ffn": 4, "enc.1.q": 1, "enc.1.ffn": 1, "enc.2.q": 2, "enc.2.ffn": 2,
    }  # fmt: skip
    assert all(a.alpha / a.rank == 32 for a in plan.adapters)
    assert plan.block_ranks(3) == [4, 1, 2]


def test_rank_zero_blocks_get_no_adapter():
    plan = GeLoRAPolicy(offset=0).plan(targets(), [10.0, 9.0, 11.0, 11.0])
    assert {a.block for a in plan.adapters} == {1}
    assert plan.block_ranks(3) == [0, 2, 0]


def test_adapter_parameters_are_r_times_in_plus_out():
    plan = UniformPolicy(rank=3).plan(targets())
    assert plan.trainable_adapter_params == 3 * 3 * ((8 + 8) + (8 + 32))


def test_plan_round_trips_through_a_dict():
    plan = GeLoRAPolicy().plan(targets(), [1.0, 3.5, 2.0, 2.0])
    assert RankPlan.from_dict(plan.to_dict()) == plan


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: GeLoRAPolicy(offset=-1), "offset must be >= 0"),
        (lambda: GeLoRAPolicy(scaling={"rule": "constant", "scale": 0}), "lora.scale"),
        (lambda: GeLoRAPolicy(scaling={"rule": "sqrt", "scale": 2}), "lora.scaling"),
        (lambda: UniformPolicy(rank=0), "rank must be >= 1"),
        (lambda: GeLoRAPolicy().plan(targets(), [1.0, float("nan"), 2.0, 3.0]), "finite"),
        (lambda: GeLoRAPolicy().plan(targets(), [1.0, 2.0]), "only 2 layers"),
        (lambda: GeLoRAPolicy().plan([], [1.0, 2.0]), "no target"),
    ],
)
def test_bad_policy_input_is_rejected(build, message):
    with pytest.raises(ValueError, match=message):
        build()
