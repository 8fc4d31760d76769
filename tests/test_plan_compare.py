"""gelora-plan --compare: a plan per value of a key, side by side, with how far they agree."""

from __future__ import annotations

import json

import pytest

from gelora.errors import ConfigError
from gelora.plan.compare import (
    PRESETS,
    Comparison,
    PlanVariant,
    agreement,
    compare_plans,
    format_comparison,
    parse_comparison,
    variant_configs,
)
from tests.helpers import TINY, compose_train, gelora_plan


def test_parse_comparison_reads_presets_and_key_value_lists():
    assert parse_comparison("pooling") == Comparison(*PRESETS["pooling"])
    assert parse_comparison("rank_policy.noise_k=0,1,2") == Comparison(
        "rank_policy.noise_k", (0, 1, 2)
    )
    assert parse_comparison("estimator.pooling=mean,cls").values == ("mean", "cls")
    for bad in ("poolings", "estimator.pooling=mean", "=1,2"):
        with pytest.raises(ConfigError, match="--compare"):
            parse_comparison(bad)


def test_variants_set_each_value_and_refuse_unknown_keys_groups_and_wrong_types():
    cfg = compose_train(*TINY, "paths.output_dir=.")
    variants = variant_configs(
        cfg, [Comparison("rank_policy.score", ("gap", "waterfill")), Comparison("seed", (0, 1))]
    )
    assert [label for label, _ in variants] == [
        "rank_policy.score=gap seed=0",
        "rank_policy.score=gap seed=1",
        "rank_policy.score=waterfill seed=0",
        "rank_policy.score=waterfill seed=1",
    ]
    assert [(v.rank_policy.score, v.seed) for _, v in variants] == [
        ("gap", 0), ("gap", 1), ("waterfill", 0), ("waterfill", 1)
    ]  # fmt: skip
    assert cfg.rank_policy.score == "gap" and cfg.seed == 0  # the original is untouched
    with pytest.raises(ConfigError, match=r"no key 'estimator\.poolin'"):
        variant_configs(cfg, [Comparison("estimator.poolin", ("mean", "cls"))])
    with pytest.raises(ConfigError, match="'estimator' is a config section"):
        variant_configs(cfg, [Comparison("estimator", ("twonn", "mle"))])
    with pytest.raises(ConfigError, match=r"--compare estimator\.sample_seed=many"):
        variant_configs(cfg, [Comparison("estimator.sample_seed", (0, "many"))])


def test_every_variant_is_checked_before_any_plan_is_made():
    cfg = compose_train(*TINY, "paths.output_dir=.")
    planned = []
    with pytest.raises(ConfigError, match=r"--compare estimator\.pooling=bogus"):
        compare_plans(
            cfg, [Comparison("estimator.pooling", ("mean", "bogus"))], lambda v: planned.append(v)
        )
    assert planned == []


@pytest.mark.parametrize(
    ("comparison", "message"),
    [
        (
            Comparison("rank_policy.score", ("gap", "loud")),
            "--compare rank_policy.score=loud: rank_policy.score must be one of",
        ),
        (
            Comparison("rank_policy.seed", ("0", "1")),
            "--compare rank_policy.seed=0: method=shuffled needs a budget",
        ),
    ],
)
def test_every_variants_method_and_budget_are_built_before_any_plan(comparison, message):
    budget = [] if comparison.key == "rank_policy.seed" else ["budget.rank=2"]
    cfg = compose_train(*TINY, "method=shuffled", *budget, "paths.output_dir=.")
    planned = []
    with pytest.raises(ConfigError) as refused:
        compare_plans(cfg, [comparison], lambda v: planned.append(v))
    assert str(refused.value).startswith(message)
    assert "rank_policy: rank_policy." not in str(refused.value)  # its key named once
    assert planned == []


def _variant(setting: str, ranks: list[int]) -> PlanVariant:
    return PlanVariant(setting, [1.0] * (len(ranks) + 1), ranks, 10 * sum(ranks), [])


def test_agreement_counts_identical_pairs_ranges_and_top_blocks():
    found = agreement(
        [_variant("a", [1, 3, 1]), _variant("b", [1, 3, 1]), _variant("c", [2, 1, 2])]
    )
    assert (found.identical_pairs, found.pairs) == (1, 3)
    assert found.block_rank_ranges == [(1, 2), (1, 3), (1, 2)]
    assert found.largest_move == 2 and found.top_blocks == [1, 1, 0]
    assert not found.stable
    assert agreement([_variant("a", [2, 2]), _variant("b", [2, 2])]).stable
    text = format_comparison([_variant("a", [1, 3, 1]), _variant("c", [2, 1, 2])])
    assert "0 of 1 pairs identical; rank per block 1-2 1-3 1-2; largest move 2" in text


def test_compare_on_the_command_line_shares_one_profile_and_saves_the_plans(tmp_path):
    run = gelora_plan(
        f"hydra.run.dir={tmp_path}", *TINY, "budget.rank=2", "estimator.cache=false",
        "--compare", "remainder",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("hidden states:") == 1  # the plan's keys vary: one ID profile
    assert "rank plans compared" in run.stdout
    saved = json.loads((tmp_path / "plan_comparison.json").read_text())
    settings = [v["setting"] for v in saved["variants"]]
    assert settings == [f"rank_policy.score={s}" for s in ("gap", "id", "waterfill")]
    assert len({v["params"] for v in saved["variants"]}) == 1  # one budget, spent by each rule
    for variant in saved["variants"]:  # each variant is the plan gelora-plan makes alone
        alone = tmp_path / variant["setting"].split("=")[1]
        single = gelora_plan(f"hydra.run.dir={alone}", *TINY, "budget.rank=2", variant["setting"])
        assert single.returncode == 0, single.stderr[-3000:]
        adapters = json.loads((alone / "rank_plan.json").read_text())["adapters"]
        block_ranks = {a["block"]: a["rank"] for a in adapters}
        assert [block_ranks[b] for b in sorted(block_ranks)] == variant["block_ranks"]


def test_compare_refuses_bad_input_in_one_line_before_any_model_loads(tmp_path):
    for arguments, message in [
        (["--compare"], "--compare needs a value"),
        (["--compare", "estimator.pooling=mean,bogus"], "--compare estimator.pooling=bogus"),
        (["--compare", "estimator=mle,twonn"], "'estimator' is a config section"),
    ]:
        run = gelora_plan(f"hydra.run.dir={tmp_path / 'x'}", *TINY, *arguments)
        assert run.returncode == 2, run.stderr[-2000:]
        errors = [line for line in run.stderr.splitlines() if "error" in line]
        assert len(errors) == 1 and message in errors[0], run.stderr[-2000:]
        assert "hidden states" not in run.stdout + run.stderr
