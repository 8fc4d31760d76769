"""Issue 42: the same-rate comparison beside the tuned-rate one, and the rank-plan section (how
far each row's plans sit from the reference's and how much they move), on hand-checked cases."""

from __future__ import annotations

import csv
import dataclasses

import pytest

from gelora.table.cli import main
from gelora.table.paired_tables import paired_section
from gelora.table.plan_stability import (
    plan_spreads,
    plan_stability_markdown,
    rank_units_moved,
)
from tests.test_table import _completed, _job, _run

UNIFORM = {f"b{b}.{m}": 2 for b in range(3) for m in ("q", "v")}  # 3 blocks x 2 matrices, rank 2


def _ranks(*block_ranks: int) -> dict[str, int]:
    return {f"b{b}.{m}": r for b, r in enumerate(block_ranks) for m in ("q", "v")}


def test_rank_units_moved_counts_ranks_above_the_reference_per_block():
    assert rank_units_moved(UNIFORM, UNIFORM, 3) == 0
    # 3,2,1 against 2,2,2: one rank above on both matrices of block 0: one block unit
    assert rank_units_moved(_ranks(3, 2, 1), UNIFORM, 3) == 1
    assert rank_units_moved(_ranks(5, 1, 0), UNIFORM, 3) == 3
    # one matrix of block 0 two ranks up, one of block 2 two down: 2 matrix ranks / 2 per block
    per_matrix = dict(UNIFORM) | {"b0.q": 4, "b2.v": 0}
    assert rank_units_moved(per_matrix, UNIFORM, 3) == 1
    with pytest.raises(ValueError, match="reference plan"):
        rank_units_moved(UNIFORM, {}, 3)


def _planned(method: str, task: str, seed: int, ranks: dict[str, int], **more):
    run = _run(method, task, seed, 0.8)
    blocks = sorted({name.split(".")[0] for name in ranks})
    block_ranks = [ranks[f"{b}.q"] for b in blocks]
    return dataclasses.replace(run, trained_ranks=ranks, block_ranks=block_ranks, **more)


def test_plan_spreads_count_distinct_plans_moves_and_half_sample_instability():
    half_samples = {"unstable_blocks": [0, 2], "plans": [[3, 2, 1], [2, 2, 2], [3, 2, 1]]}
    runs = [_planned("lora", "sst", s, UNIFORM) for s in range(3)]
    runs += [
        _planned("gelora", "sst", 0, _ranks(3, 2, 1), sensitivity=half_samples),
        _planned("gelora", "sst", 1, _ranks(3, 2, 1), sensitivity=half_samples),
        _planned("gelora", "sst", 2, _ranks(4, 1, 1), sensitivity={"unstable_blocks": [1]}),
    ]
    spreads = {s.method: s for s in plan_spreads(runs, "lora")}
    gelora = spreads["gelora"]
    assert (gelora.runs, gelora.distinct_plans, gelora.moved) == (3, 2, (1.0, 1.0, 2.0))
    assert gelora.reference_units == 6  # 3 blocks x rank 2
    assert gelora.unstable_blocks == (2, 2, 1) and gelora.blocks == 3
    assert gelora.resampled_plans == (2, 2)  # the third record lists no plans
    assert spreads["lora"].moved == (0.0, 0.0, 0.0) and spreads["lora"].distinct_plans == 1
    text = plan_stability_markdown(runs, "lora")
    assert "| gelora | sst | 3 | 2 | 1-2 of 6 | 1-2 of 3 | 2 |" in text
    assert "| lora |" not in text  # the reference is not its own row
    assert plan_stability_markdown([_run("lora", "sst", 0, 0.8)], "lora") == ""


def test_plans_over_batch_draws_get_their_own_section():
    """Issue 46: an allocator run with rank_policy.stability_seeds records its plans over batch
    draws (method_summary.plan_draws); the section counts them and their moves off uniform."""
    names = sorted(UNIFORM)  # b0.q, b0.v, b1.q, ...
    order = [_ranks(3, 2, 1), _ranks(3, 2, 1), _ranks(2, 2, 2), _ranks(4, 1, 1), _ranks(3, 2, 1)]
    draws = {"targets": names, "ranks": [[plan[n] for n in names] for plan in order]}
    runs = [_planned("lora", "sst", s, UNIFORM) for s in range(2)]
    runs += [_planned("fisher", "sst", s, _ranks(3, 2, 1), plan_draws=draws) for s in range(2)]
    text = plan_stability_markdown(runs, "lora")
    # five draws, three distinct plans (3-2-1, 2-2-2, 4-1-1); moved 1, 1, 0, 2, 1 units
    assert "| fisher | sst | 2 | 5 | 3 | 0-2 |" in text
    assert "### Plans over batch draws" in text
    without = [*runs[:2], _planned("fisher", "sst", 0, _ranks(3, 2, 1))]
    assert "Plans over batch draws" not in plan_stability_markdown(without, "lora")


def test_same_rate_pairs_only_runs_trained_at_one_learning_rate():
    runs = []
    for seed in range(3):
        runs.append(dataclasses.replace(_run("lora", "a", seed, 0.80), lr=1e-3))
        runs.append(dataclasses.replace(_run("gelora", "a", seed, 0.81 + seed / 100), lr=1e-3))
        runs.append(dataclasses.replace(_run("lora", "b", seed, 0.70), lr=1e-3))
        runs.append(dataclasses.replace(_run("gelora", "b", seed, 0.75), lr=3e-3))
    tuned = paired_section(runs, "lora")
    same = paired_section(runs, "lora", same_rate=True)
    assert len(tuned.overall[0].pairs) == 6
    (comparison,) = same.overall
    assert {p.task for p in comparison.pairs} == {"a"}
    assert comparison.differences == pytest.approx([1.0, 2.0, 3.0])
    assert same.title == "Paired differences versus lora at the same learning rate"
    assert "tasks with a shared rate: gelora a (3 pairs)." in same.caption
    # the verdict over the one shared task rests on its seeds: 1, 2, 3 -> MDE 3.10
    assert same.verdict(comparison) == "no detectable difference (MDE 3.10 over 3 seeds of 1 task)"


def test_the_table_adds_the_same_rate_and_plan_sections_only_when_they_say_something(tmp_path):
    for task, gelora_lr in (("a", 1e-3), ("b", 3e-3)):
        for seed in range(3):
            lora = _completed(0.8, lr=1e-3) | {"ranks": {"b0.q": 2, "b1.q": 2}}
            gelora = _completed(0.81 + seed / 100, lr=gelora_lr) | {"ranks": {"b0.q": 3, "b1.q": 1}}
            _job(tmp_path, "lora", task, seed, lora)
            _job(tmp_path, "gelora", task, seed, gelora)
    out = tmp_path / "out"
    main([str(tmp_path), "--no-plots", "--out", str(out)])
    table = (out / "table.md").read_text()
    assert "## Paired differences versus lora at the same learning rate" in table
    (row, _noise) = list(csv.DictReader((out / "paired_same_rate.csv").open()))
    assert (row["row"], row["pairs"], row["tasks"]) == ("gelora", "3", "1")
    assert "## Rank plans: how far from lora's, and how stable" in table
    assert "| gelora | a | 3 | 1 | 1 of 4 | - | - |" in table  # block_ranks 1, 2: two blocks
    # every pair at one rate: the same-rate section would repeat the tuned one, and its stale
    # file from the run above goes
    same = tmp_path / "same"
    for task in ("a", "b"):
        for seed in range(3):
            _job(same, "lora", task, seed, _completed(0.8, lr=1e-3))
            _job(same, "gelora", task, seed, _completed(0.81, lr=1e-3))
    main([str(same), "--no-plots", "--out", str(out)])
    assert "at the same learning rate" not in (out / "table.md").read_text()
    assert not (out / "paired_same_rate.csv").exists()
