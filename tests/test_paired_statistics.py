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

from gelora.reporting.paired import (
    Comparison,
    Pair,
    bootstrap_interval,
    equivalent,
    hierarchical_bootstrap_interval,
    hierarchical_bootstrap_means,
    minimum_detectable_effect,
    noise_floor,
    verdict,
)
from gelora.reporting.paired_tables import paired_latex, paired_markdown, paired_section
from gelora.reporting.sweep_runs import load_runs
from gelora.reporting.table_cli import main
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


def test_a_comparisons_verdict_uses_the_interval_shown_and_its_90_percent_twin():
    comparison = _comparison({"a": [0.2, -0.1, 0.3], "b": [0.0, 0.1, -0.2], "c": [0.1, 0.2, 0.0]})
    low, high = comparison.interval_shown(True, 0.90)
    assert (low, high) == hierarchical_bootstrap_interval(comparison.task_groups, confidence=0.9)
    assert comparison.interval_shown(True) == comparison.hierarchical_interval
    assert comparison.interval_shown(False) == comparison.interval
    assert comparison.verdict(True, margin=1.0) == "equivalent within +/-1"
    mde = comparison.mde
    assert comparison.verdict(True) == f"no detectable difference (MDE {mde:.2f})"
    ahead = _comparison({"a": [2.0, 3.0, 2.5], "b": [1.0, 1.5, 2.0], "c": [3.0, 2.0, 2.5]})
    assert ahead.verdict(True).startswith("ahead by 2.17 [")
    assert _comparison({"a": [1.0, 2.0]}).verdict(False) == "no verdict: only 2 pairs"
    assert _comparison({"a": [0.0] * 4}).verdict(False) == "identical scores on every pair"


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


def test_the_table_shows_both_intervals_mde_verdict_and_noise_floor(tmp_path):
    runs = []
    for task in ("a", "b", "c"):
        for seed in range(4):
            runs.append(_run("lora", task, seed, 0.80 + seed / 100))
            runs.append(_run("gelora", task, seed, 0.83 + seed / 100 + (task == "b") / 100))
    section = paired_section(runs, "lora", margin=0.5)
    assert section.hierarchical  # 3 tasks
    table = paired_markdown(section)
    gelora = next(line for line in table.splitlines() if line.startswith("| gelora |"))
    comparison = section.overall[0]
    flat, nested = comparison.interval, comparison.hierarchical_interval
    cells = [c.strip() for c in gelora.strip("|").split("|")]
    assert cells[3] == cells[8] == f"[{nested[0]:+.2f}, {nested[1]:+.2f}]"
    assert cells[7] == f"[{flat[0]:+.2f}, {flat[1]:+.2f}]"
    assert cells[9] == f"{comparison.mde:.2f}" and cells[10].startswith("ahead by 3.33 [")
    assert "| lora vs itself (other seed) | 12 | +0.00 |" in table
    assert "the 95% CI column is the hierarchical one (3 tasks" in section.caption
    assert "equivalent within +/-0.5 when the 90% interval" in section.caption
    assert "Noise floor (lora vs itself (other seed))" in section.caption
    latex = paired_latex(section)
    assert "Flat 95\\% CI & Hier. 95\\% CI & MDE & Verdict" in latex
    two_tasks = paired_section([r for r in runs if r.task != "c"], "lora")
    assert not two_tasks.hierarchical
    assert "the 95% CI column is the flat one (2 tasks" in two_tasks.caption
    assert paired_markdown(two_tasks).count(f"[{two_tasks.overall[0].interval[0]:+.2f}") >= 2


def test_differing_plans_leaves_out_pairs_on_identical_rank_plans():
    runs = []
    for seed in range(3):
        runs += [_run("lora", "sst", seed, 0.80), _run("id_prop", "sst", seed, 0.80)]
        runs.append(_run("gelora", "sst", seed, 0.81 + seed / 100))
        runs[-1].trained_ranks = {"q": 1, "v": 3} if seed else {"q": 2, "v": 2}
    for run in runs:
        run.trained_ranks = run.trained_ranks or {"q": 2, "v": 2}
    section = paired_section(runs, "lora", differing_plans=True)
    counts = {c.method: len(c.pairs) for c in section.overall}
    assert counts == {"id_prop": 0, "gelora": 2}
    assert section.per_task["gelora", "sst"].differences == pytest.approx([2.0, 3.0])
    assert "pairs whose two runs trained identical rank plans" in section.caption
    assert "left out: id_prop 3 of 3, gelora 1 of 3." in section.caption
    assert "Same ranks as lora" not in section.caption
    assert "| id_prop | 0 | - |" in paired_markdown(section)
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
    assert gelora["interval_shown"] == "hierarchical"
    assert float(gelora["mean_difference"]) == pytest.approx(0.2)
    assert float(gelora["flat_ci95_low"]) == pytest.approx(0.2)
    assert float(gelora["hierarchical_ci95_high"]) == pytest.approx(0.2)
    assert gelora["verdict"] == "ahead by 0.20 [+0.20, +0.20]"
    assert "equivalent within +/-1 when the 90% interval" in (out / "table.md").read_text()
    for bad in ("0", "-1"):
        with pytest.raises(SystemExit) as exit_info:
            main([str(tmp_path), "--no-plots", "--out", str(out), "--margin", bad])
        assert exit_info.value.code == 2
    assert "--margin must be a positive number" in capsys.readouterr().err
