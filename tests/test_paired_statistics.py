"""What gelora-table's paired section can resolve (issue 26): the hierarchical (task, then seed)
bootstrap, the minimum detectable effect, verdicts with equivalence by two one-sided tests, the
noise floor of the reference against itself, pairs on identical rank plans left out, and rows
whose runs peaked at their last evaluation."""

from __future__ import annotations

import csv
import itertools
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import nct, norm, t

from gelora.table.cli import main
from gelora.table.paired import (
    Comparison,
    Pair,
    PairingRules,
    bootstrap_interval,
    equivalent,
    hierarchical_bootstrap_interval,
    hierarchical_bootstrap_means,
    minimum_detectable_effect,
    noise_floor,
    verdict,
)
from gelora.table.paired_tables import paired_latex, paired_markdown, paired_section
from gelora.table.sweep_runs import load_runs
from tests.test_table import _completed, _job, _run


def _exact_hierarchical(groups: list[list[float]]) -> Counter:
    """Every outcome of the two-stage resampling, with its exact probability: tasks drawn in
    order with replacement, then each drawn task's seeds with replacement."""
    k = len(groups)
    outcome: Counter = Counter()
    for tasks in itertools.product(range(k), repeat=k):
        draws = [itertools.product(groups[i], repeat=len(groups[i])) for i in tasks]
        combos = list(itertools.product(*draws))
        weight = Fraction(1, k**k) / len(combos)
        for combo in combos:
            values = [v for seeds in combo for v in seeds]
            outcome[Fraction(sum(values)) / len(values)] += weight
    return outcome


def test_hierarchical_bootstrap_matches_the_exact_two_stage_distribution():
    # Tasks {0, 2} and {4} (unbalanced): draw 2 tasks, then seeds within each. Exact outcomes
    # enumerated above; the resampled means' frequencies agree within sampling error.
    groups = [[0, 2], [4]]
    exact = _exact_hierarchical(groups)
    assert sum(exact.values()) == 1
    # Hand check of two outcomes: both draws the 1-seed task: mean 4 with p 1/4; both draws
    # the 2-seed task and all four seeds 0: p 1/4 x 1/16.
    assert exact[Fraction(4)] == Fraction(1, 4)
    assert exact[Fraction(0)] == Fraction(1, 64)
    means = hierarchical_bootstrap_means(groups, resamples=100_000, seed=3)
    seen = Counter(Fraction(m).limit_denominator(12) for m in means)
    for value, p in exact.items():
        assert seen[value] / len(means) == pytest.approx(float(p), abs=0.006)
    expected_mean = float(sum(v * p for v, p in exact.items()))
    assert means.mean() == pytest.approx(expected_mean, abs=0.02)


def test_hierarchical_interval_resamples_tasks_then_seeds_reproducibly():
    # Two tasks whose seeds agree: only the task draw varies; means 0, 1/2, 1 with p 1/4, 1/2,
    # 1/4, so the 2.5th and 97.5th percentiles are 0 and 1.
    assert hierarchical_bootstrap_interval([[0.0, 0.0], [1.0, 1.0]]) == (0.0, 1.0)
    groups = [[1.0, 2.0, 3.0], [2.0, 5.0], [-1.0, 0.0, 1.0, 4.0]]
    assert hierarchical_bootstrap_interval(groups) == hierarchical_bootstrap_interval(groups)
    assert hierarchical_bootstrap_interval([[1.5]]) == (1.5, 1.5)
    with pytest.raises(ValueError, match="no differences to bootstrap"):
        hierarchical_bootstrap_interval([])


def test_hierarchical_interval_is_wider_than_the_flat_one_when_tasks_differ():
    # Seeds agree within a task, tasks far apart: the flat bootstrap sees 12 exchangeable pairs,
    # the hierarchical one 4 tasks; its interval must be the wider.
    groups = [[base + s / 10 for s in range(3)] for base in (0.0, 2.0, 4.0, 6.0)]
    flat = bootstrap_interval([v for g in groups for v in g])
    nested = hierarchical_bootstrap_interval(groups)
    assert nested[1] - nested[0] > 1.4 * (flat[1] - flat[0])
    point = float(np.mean([v for g in groups for v in g]))
    assert nested[0] < point < nested[1]


def test_minimum_detectable_effect_matches_scipy_t_quantiles_and_power():
    # By hand: d = 1, 2, 3, 4: sd = sqrt(5/3) = 1.29099, t_.975,3 = 3.18245, t_.80,3 = 0.97849,
    # MDE = 4.16094 x 1.29099 / 2 = 2.68586.
    assert minimum_detectable_effect([1, 2, 3, 4]) == pytest.approx(2.68586, abs=1e-5)
    rng = np.random.default_rng(1)
    d = rng.normal(0.3, 1.2, size=20)
    n, sd = d.size, np.std(d, ddof=1)
    expected = (t.ppf(0.975, n - 1) + t.ppf(0.8, n - 1)) * sd / np.sqrt(n)
    mde = minimum_detectable_effect(d)
    assert mde == pytest.approx(expected)
    # The paired t-test's exact power (noncentral t) at that effect is close to 80%.
    crit, nc = t.ppf(0.975, n - 1), mde / (sd / np.sqrt(n))
    power = 1 - nct.cdf(crit, n - 1, nc) + nct.cdf(-crit, n - 1, nc)
    assert power == pytest.approx(0.8, abs=0.01)
    # Larger than the normal approximation, which it approaches as n grows.
    assert mde > (norm.ppf(0.975) + norm.ppf(0.8)) * sd / np.sqrt(n)
    assert minimum_detectable_effect([2.0]) is None
    assert minimum_detectable_effect([0.5, 0.5, 0.5]) == 0.0


def test_equivalence_needs_the_90_interval_inside_the_margin():
    assert equivalent((-0.5, 0.8), 1.0)
    assert equivalent((-1.0, 1.0), 1.0)  # on the boundary: both one-sided tests reject
    assert not equivalent((-1.2, 0.3), 1.0)
    assert not equivalent((0.2, 1.1), 1.0)


def test_verdict_wording_follows_what_the_statistics_allow():
    assert verdict(1.5, (0.4, 2.6), 1.0) == "ahead by 1.50 [+0.40, +2.60]"
    assert verdict(-1.5, (-2.6, -0.4), 1.0, 0.5, (-2.4, -0.6)) == "behind by 1.50 [-2.60, -0.40]"
    assert verdict(0.1, (-0.3, 0.5), 0.8) == "no detectable difference (MDE 0.80)"
    assert verdict(0.1, (-0.3, 0.5), 0.8, 1.0, (-0.2, 0.4)) == "equivalent within +/-1"
    assert verdict(0.1, (-0.3, 0.5), 0.8, 0.25, (-0.2, 0.4)) == (
        "no detectable difference (MDE 0.80); not shown equivalent within +/-0.25"
    )


def _comparison(differences_by_task: dict[str, list[float]]) -> Comparison:
    pairs = tuple(
        Pair(task, seed, 0.5 + d / 100, 0.5)
        for task, values in differences_by_task.items()
        for seed, d in enumerate(values)
    )
    return Comparison("m", "lora", pairs)


# Student's t quantiles with 2 degrees of freedom, from a printed table: t_.975 = 4.3027,
# t_.95 = 2.9200, t_.80 = 1.0607. For three values of SD 1: the 95% half-width is
# 4.3027 / sqrt(3) = 2.4841 and the MDE (4.3027 + 1.0607) / sqrt(3) = 3.0965.
HALF_95_K3, MDE_K3 = 2.4841, 3.0965


def test_the_task_level_runs_over_task_means_not_pairs():
    # Task means 1, 2, 3 (the pooled mean over the six pairs is 13/6 instead): the unit is
    # the task, so the mean is 2, the 95% interval 2 +/- 2.4841 and the MDE 3.0965.
    comparison = _comparison({"a": [0.0, 2.0], "b": [2.0], "c": [3.0, 3.0, 3.0]})
    level = comparison.task_level
    assert level.units == "3 tasks" and level.values == pytest.approx((1.0, 2.0, 3.0))
    assert comparison.mean_difference == pytest.approx(13 / 6)
    assert level.mean == pytest.approx(2.0)
    assert level.interval() == pytest.approx((2 - HALF_95_K3, 2 + HALF_95_K3), abs=1e-4)
    assert comparison.mde == pytest.approx(MDE_K3, abs=1e-4)
    assert comparison.verdict() == "no detectable difference (MDE 3.10 over 3 tasks)"
    # The flat MDE (six pairs as independent) is smaller: it leaves out the tasks' spread.
    assert comparison.flat_mde < comparison.mde
    ahead = _comparison({"a": [1.0, 3.0], "b": [3.0, 3.0], "c": [4.0, 4.0]})
    assert ahead.verdict() == "ahead by 3.00 [+0.52, +5.48] over 3 tasks"
    behind = _comparison({"a": [-1.0, -3.0], "b": [-3.0], "c": [-4.0]})
    assert behind.verdict() == "behind by 3.00 [-5.48, -0.52] over 3 tasks"


def test_one_task_is_read_over_its_seeds_and_equivalence_uses_the_90_percent_interval():
    single = _comparison({"a": [1.0, 2.0, 3.0]})
    assert single.task_level.units == "3 seeds of 1 task"
    assert single.verdict() == "no detectable difference (MDE 3.10 over 3 seeds of 1 task)"
    # Task means 0.1, -0.1, 0.0 (SD 0.1): the 90% interval is 0 +/- 2.9200 x 0.1 / sqrt(3)
    # = +/-0.169, inside +/-0.2 but not inside +/-0.15.
    close = _comparison({"a": [0.1, 0.1], "b": [-0.1, -0.1], "c": [0.0, 0.0]})
    assert close.task_level.interval(0.90) == pytest.approx((-0.1686, 0.1686), abs=1e-4)
    assert close.verdict(margin=0.2) == "equivalent within +/-0.2 over 3 tasks"
    assert close.verdict(margin=0.15).endswith("; not shown equivalent within +/-0.15")
    assert _comparison({"a": [1.0, 2.0]}).verdict() == "no verdict: only 2 pairs"
    assert _comparison({"a": [0.0] * 4}).verdict() == "identical scores on every pair"


def test_noise_floor_pairs_each_reference_seed_with_the_next_cyclically():
    runs = [_run("lora", "sst", s, score) for s, score in enumerate([0.80, 0.82, 0.86])]
    runs += [_run("lora", "news", s, score) for s, score in enumerate([0.50, 0.53])]
    runs += [_run("lora", "qnli", 0, 0.7), _run("gelora", "sst", 0, 0.9)]
    runs += [_run("lora", "mrpc", 0, 0.7), _run("lora", "mrpc", 1, 0.7, test_rows="other")]
    floor = noise_floor(runs, "lora")
    # sst: 82-80 = 2, 86-82 = 4, 80-86 = -6 (cyclic: sums to 0); news: one pair, 53-50 = 3;
    # qnli has one seed and mrpc's two seeds were scored on different rows: no pairs.
    assert [(p.task, p.seed) for p in floor.pairs] == [("sst", 0), ("sst", 1), ("sst", 2), (
        "news", 0)]  # fmt: skip
    assert floor.differences == pytest.approx([2.0, 4.0, -6.0, 3.0])
    assert floor.method == "lora vs itself (other seed)"


def _cells(table: str, row: str) -> dict[str, str]:
    """The paired table's row ``row``, by column header."""
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("| method | tasks |"))
    names = [c.strip() for c in header.strip("|").split("|")]
    line = next(line for line in lines if line.startswith(f"| {row} |"))
    return dict(zip(names, [c.strip() for c in line.strip("|").split("|")], strict=True))


def test_the_table_shows_the_task_level_beside_both_bootstrap_intervals(tmp_path):
    runs = []
    for task, shift in (("a", 1), ("b", 2), ("c", 3)):
        for seed in range(4):
            runs.append(_run("lora", task, seed, 0.80 + seed / 100))
            runs.append(_run("gelora", task, seed, 0.80 + seed / 100 + shift / 100))
    section = paired_section(runs, "lora", PairingRules(margin=0.5))
    table = paired_markdown(section)
    comparison = section.overall[0]
    flat, nested = comparison.interval, comparison.hierarchical_interval
    cells = _cells(table, "gelora")
    # task means 1, 2, 3: the task-level numbers of the hand-checked case above
    assert cells["tasks"] == "3" and cells["pairs"] == "12"
    assert cells["task-level 95% CI"] == f"[{2 - HALF_95_K3:+.2f}, {2 + HALF_95_K3:+.2f}]"
    assert cells["task-level MDE"] == "3.10 (3 tasks)"
    assert cells["verdict (task level)"].startswith("no detectable difference (MDE 3.10 over 3")
    assert cells["hierarchical 95% CI"] == f"[{nested[0]:+.2f}, {nested[1]:+.2f}]"
    assert cells["flat 95% CI (pairs as independent)"] == f"[{flat[0]:+.2f}, {flat[1]:+.2f}]"
    noise = _cells(table, "lora vs itself (other seed)")
    assert noise["pairs"] == "12" and noise["mean difference"] == "+0.00"
    assert noise["task-level 95% CI"] == noise["verdict (task level)"] == "-"
    assert "Task level (3 tasks paired)" in section.caption
    assert "equivalent within +/-0.5 when the task-level 90% interval" in section.caption
    assert "Noise floor (lora vs itself (other seed))" in section.caption
    latex = paired_latex(section)
    assert "Task-level 95\\% CI & Task-level MDE & Verdict (task level)" in latex
    one_task = paired_section([r for r in runs if r.task == "a"], "lora")
    assert _cells(paired_markdown(one_task), "gelora")["task-level MDE"].endswith(
        "(4 seeds of 1 task)"
    )


def test_differing_plans_leaves_out_pairs_on_identical_rank_plans():
    runs = []
    for seed in range(3):
        runs += [_run("lora", "sst", seed, 0.80), _run("id_prop", "sst", seed, 0.80)]
        runs.append(_run("gelora", "sst", seed, 0.81 + seed / 100))
        runs[-1].trained_ranks = {"q": 1, "v": 3} if seed else {"q": 2, "v": 2}
    for run in runs:
        run.trained_ranks = run.trained_ranks or {"q": 2, "v": 2}
    section = paired_section(runs, "lora", PairingRules(differing_plans=True))
    counts = {c.method: len(c.pairs) for c in section.overall}
    assert counts == {"id_prop": 0, "gelora": 2}
    assert section.per_task["gelora", "sst"].differences == pytest.approx([2.0, 3.0])
    assert "pairs whose two runs trained identical rank plans" in section.caption
    assert "left out: id_prop 3 of 3, gelora 1 of 3." in section.caption
    assert "Same ranks as lora" not in section.caption
    assert "| id_prop | 0 | 0 | - |" in paired_markdown(section)
    assert "left out" not in paired_section(runs, "lora").caption


def test_rows_whose_runs_peaked_at_the_last_evaluation_are_flagged(tmp_path):
    for seed in range(3):
        last = {"best_step": 300, "optimizer_steps": 300}
        early = {"best_step": 200, "optimizer_steps": 300}
        _job(tmp_path, "lora", "sst", seed, _completed(0.80 + seed / 100) | early)
        gelora = last if seed < 2 else early
        _job(tmp_path, "gelora", "sst", seed, _completed(0.81 + seed / 100) | gelora)
    runs = load_runs(tmp_path)
    assert {(r.method, r.seed): r.best_at_last for r in runs}[("gelora", 0)] is True
    section = paired_section(runs, "lora")
    assert section.overall[0].best_at_last == (2, 3)
    assert (
        "gelora may be under-trained: 2 of 3 runs had their best validation at the last "
        "evaluation." in section.caption
    )
    assert "lora (noise floor) may be under-trained" not in section.caption  # 0 of 3


def test_command_writes_paired_csv_with_both_intervals_and_takes_a_margin(tmp_path, capsys):
    for task in ("a", "b", "c"):
        for seed in range(3):
            _job(tmp_path, "lora", task, seed, _completed(0.80 + seed / 100))
            _job(tmp_path, "gelora", task, seed, _completed(0.802 + seed / 100))
    out = tmp_path / "out"
    main([str(tmp_path), "--no-plots", "--out", str(out), "--margin", "1"])
    rows = list(csv.DictReader((out / "paired.csv").open()))
    assert [r["row"] for r in rows] == ["gelora", "lora vs itself (other seed)"]
    gelora = rows[0]
    assert gelora["task_level_units"] == "3 tasks" and gelora["tasks"] == "3"
    assert float(gelora["mean_difference"]) == pytest.approx(0.2)
    assert float(gelora["task_level_ci95_low"]) == pytest.approx(0.2)
    assert float(gelora["flat_ci95_low"]) == pytest.approx(0.2)
    assert float(gelora["hierarchical_ci95_high"]) == pytest.approx(0.2)
    assert gelora["verdict"] == "ahead by 0.20 [+0.20, +0.20] over 3 tasks"
    assert rows[1]["verdict"] == rows[1]["task_level_mde"] == ""  # the noise floor
    assert float(rows[1]["flat_mde_pairs_as_independent"]) > 0
    text = (out / "table.md").read_text()
    assert "equivalent within +/-1 when the task-level 90% interval" in text
    for bad in ("0", "-1"):
        with pytest.raises(SystemExit) as exit_info:
            main([str(tmp_path), "--no-plots", "--out", str(out), "--margin", bad])
        assert exit_info.value.code == 2
    assert "--margin must be a positive number" in capsys.readouterr().err
