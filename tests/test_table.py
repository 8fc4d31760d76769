"""gelora-table on a sweep directory: cells over seeds, failed and missing jobs shown as such,
paired differences on identical test rows, learning rates chosen on validation, a CLI that fails
in one line."""

from __future__ import annotations

import csv
import importlib.util
import itertools
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy.stats import wilcoxon

from gelora.table.cli import argument_parser, main, paired_or_reason
from gelora.table.lr_selection import choose_lr
from gelora.table.paired import (
    HIGHER_IS_BETTER,
    LOWER_IS_BETTER,
    Direction,
    PairingRules,
    bootstrap_interval,
    compare,
    holm_adjusted,
    pair_runs,
    sweep_direction,
    wilcoxon_test,
    wins_ties_losses,
)
from gelora.table.placement import placement_effects, placement_markdown, placement_pairs
from gelora.table.sweep_runs import SweepRun, load_runs
from gelora.table.tables import Cell, latex_escape, latex_table, markdown_table


def _job(
    root: Path,
    method: str,
    task: str,
    seed: int,
    results: dict | None,
    lr: float | None = None,
    task_config: dict | None = None,
    name: str | None = None,
) -> Path:
    name = name or f"method={method},seed={seed},task={task}"
    job = root / (name if lr is None else f"{name},optimizer.lr={lr}")
    (job / ".hydra").mkdir(parents=True)
    task_node = {"name": task} | (task_config or {})
    config = {"task": task_node, "seed": seed, "optimizer": {"lr": lr or 1e-3}}
    OmegaConf.save(config, job / ".hydra" / "config.yaml")
    choices = {"hydra": {"runtime": {"choices": {"method": method, "rank_policy": "x"}}}}
    OmegaConf.save(choices, job / ".hydra" / "hydra.yaml")
    if results is not None:
        base = {"task": task, "seed": seed, "variant": method, "metric": "accuracy"}
        (job / "results.json").write_text(json.dumps(base | results))
    return job


def _completed(
    score: float,
    params: int = 1000,
    val: float | None = None,
    test_rows: str | None = "rows-a",
    lr: float = 1e-3,
    scaling: str = "alpha/r = 2",
    n_test_rows: int = 100,
) -> dict:
    """A completed run's results; ``val`` defaults to the test score, ``test_rows`` is the test
    split's fingerprint (None: an older record without ``eval_rows``)."""
    val = score if val is None else val
    results = {
        "status": "completed",
        "metrics": {"test/accuracy": score, "val/accuracy": val - 0.01, "val/accuracy_best": val},
        "trainable_adapter_params": params,
        "block_ranks": [1, 2],
        "intrinsic_dims": [5.0, 6.0, 7.5],
        "timings": {"total_s": 10.0},
        "learning_rate": lr,
        "scaling": {"rule": "constant", "scale": 2.0, "text": scaling},
    }
    if test_rows is not None:
        results["eval_rows"] = {
            "validation": {"rows": 100, "sha256": "val-rows"},
            "test": {"rows": n_test_rows, "sha256": test_rows},
        }
    return results


def _sweep(tmp_path: Path) -> Path:
    for seed, score in enumerate([0.80, 0.82, 0.90]):
        _job(tmp_path, "lora", "sst", seed, _completed(score))
        _job(tmp_path, "gelora", "sst", seed, _completed(score - 0.1, params=500))
    _job(tmp_path, "lora", "news", 0, _completed(0.5))
    _job(tmp_path, "gelora", "news", 0, {"status": "failed", "error": "FloatingPointError: nan"})
    _job(tmp_path, "gelora", "news", 1, None)  # killed before it wrote results.json
    return tmp_path


def test_cells_give_mean_std_median_and_count(tmp_path):
    table = markdown_table(load_runs(_sweep(tmp_path)))
    lora_row = next(line for line in table.splitlines() if line.startswith("| lora "))
    # 0.80, 0.82, 0.90: mean 84.00, sample std 5.29, median 82.00
    assert "84.00 +/- 5.29 [82.00] n=3" in lora_row
    assert lora_row.rstrip().endswith("| 67.00 |")  # (84 + 50) / 2
    assert "mean +/- sample std" in table


def test_failed_and_missing_jobs_are_marked_not_dropped(tmp_path):
    table = markdown_table(load_runs(_sweep(tmp_path)))
    gelora_row = next(line for line in table.splitlines() if line.startswith("| gelora "))
    assert "1 failed, 1 missing" in gelora_row
    assert gelora_row.rstrip().endswith("| - |")  # no average without every task


def test_command_writes_tables_csv_and_plots(tmp_path):
    sweep = _sweep(tmp_path / "sweep")
    main([str(sweep), "--out", str(tmp_path / "out")])
    out = tmp_path / "out"
    assert "\\pm" in (out / "table.tex").read_text()
    rows = list(csv.DictReader((out / "runs.csv").open()))
    assert len(rows) == 9
    assert {r["status"] for r in rows} == {"completed", "failed", "missing"}
    for figure in ("id_profiles.png", "rank_plans.png", "score_vs_params.png"):
        assert (out / figure).stat().st_size > 5_000


def _run(method: str, task: str, seed: int, score: float, test_rows: str | None = "a") -> SweepRun:
    return SweepRun(
        f"{method}/{task}/{seed}", "completed", method, task, seed, "accuracy", score,
        test_rows=test_rows,
    )  # fmt: skip


def test_runs_carry_test_rows_scaling_lr_and_validation_score(tmp_path):
    _job(tmp_path, "lora", "sst", 0, _completed(0.8, val=0.7, lr=3e-4))
    (run,) = load_runs(tmp_path)
    assert (run.test_rows, run.scaling, run.lr) == ("rows-a", "alpha/r = 2", 3e-4)
    assert run.val_score == 0.7  # val/accuracy_best, not the last val/accuracy (0.69)
    main([str(tmp_path), "--no-plots", "--out", str(tmp_path / "out")])
    (row,) = csv.DictReader((tmp_path / "out" / "runs.csv").open())
    assert (row["test_rows"], row["scaling"], row["lr"], row["val_score"]) == (
        "rows-a",
        "alpha/r = 2",
        "0.0003",
        "0.7",
    )


def test_paired_statistics_match_a_hand_computed_case():
    # Method minus reference, in points: 2, 3, -1, 4, 5, 1.5, 2.5, 0.5 over 2 tasks x 4 seeds.
    method_scores = [0.82, 0.83, 0.79, 0.84, 0.85, 0.815, 0.825, 0.805]
    runs = []
    for i, score in enumerate(method_scores):
        task, seed = ("sst", "news")[i // 4], i % 4
        runs += [_run("lora", task, seed, 0.80), _run("gelora", task, seed, score)]
    (comparison,), per_task, refused = compare(runs, "lora")
    assert not refused and len(comparison.pairs) == 8
    assert comparison.mean_difference == pytest.approx(17.5 / 8)
    # Ranks of |d|: 0.5 1, 1 2, 1.5 3, 2 4, 2.5 5, 3 6, 4 7, 5 8; W- = 2 (the -1). Exact two-sided
    # p = 2 P(W <= 2), n = 8: rank subsets summing to <= 2 are {}, {1}, {2}: 2 * 3 / 256.
    assert comparison.wilcoxon.p_value == pytest.approx(6 / 256)
    assert comparison.wilcoxon.p_value == pytest.approx(wilcoxon(comparison.differences).pvalue)
    assert comparison.wins_ties_losses == (7, 0, 1)
    low, high = comparison.interval
    assert low < 17.5 / 8 < high
    assert per_task["gelora", "sst"].mean_difference == pytest.approx((2 + 3 - 1 + 4) / 4)


def test_pairs_on_the_references_own_plan_are_counted_in_the_caption():
    runs = []
    for seed in range(3):
        runs += [_run("lora", "sst", seed, 0.80), _run("id_prop", "sst", seed, 0.80)]
        runs.append(_run("gelora", "sst", seed, 0.81))
        runs[-1].trained_ranks = {"q": 1, "v": 3} if seed else {"q": 2, "v": 2}  # 0: uniform
        runs.append(_run("adalora", "sst", seed, 0.79))
        runs[-1].trained_ranks = {"q": 3, "v": 1}  # pruned away from its uniform budget
    for run in runs:
        run.trained_ranks = run.trained_ranks or {"q": 2, "v": 2}
    from gelora.table.paired_tables import paired_section

    section = paired_section(runs, "lora")
    assert (
        "Same ranks as lora, matrix for matrix, in: id_prop (3 of 3 pairs), gelora (1 of 3 "
        "pairs)." in section.caption
    )


def test_adaloras_trained_ranks_are_its_final_ones(tmp_path):
    final = {"q": 1, "v": 3}
    run = _completed(0.8) | {"ranks": {"q": 2, "v": 2}, "method_summary": {"final_ranks": final}}
    _job(tmp_path, "adalora", "sst", 0, run)
    _job(tmp_path, "lora", "sst", 0, _completed(0.8) | {"ranks": {"q": 2, "v": 2}})
    by_method = {r.method: r.trained_ranks for r in load_runs(tmp_path)}
    assert by_method == {"adalora": final, "lora": {"q": 2, "v": 2}}


def test_bootstrap_interval_matches_the_exact_resampling_distribution():
    # All 5^5 equally likely resamples of 5 values, enumerated: each end of the interval must be
    # a quantile of that exact distribution of means, within the sampling error of 10,000 draws
    # (sd of a 2.5% tail share about 0.0016).
    differences = [2.0, 3.0, -1.0, 4.0, 5.0]
    exact = np.sort([np.mean(draw) for draw in itertools.product(differences, repeat=5)])
    low, high = bootstrap_interval(differences)
    below_low, up_to_low = np.mean(exact < low - 1e-9), np.mean(exact <= low + 1e-9)
    below_high, up_to_high = np.mean(exact < high - 1e-9), np.mean(exact <= high + 1e-9)
    assert below_low <= 0.025 + 0.006 and up_to_low >= 0.025 - 0.006
    assert below_high <= 0.975 + 0.006 and up_to_high >= 0.975 - 0.006
    assert low < np.mean(differences) < high
    assert bootstrap_interval(differences) == bootstrap_interval(differences)  # seeded
    assert bootstrap_interval([1.5]) == (1.5, 1.5)
    with pytest.raises(ValueError, match="no differences to bootstrap"):
        bootstrap_interval([])


def test_pairs_without_fingerprints_on_both_sides_are_paired_and_said_so(tmp_path):
    _job(tmp_path, "lora", "sst", 0, _completed(0.80, test_rows=None))
    _job(tmp_path, "gelora", "sst", 0, _completed(0.82, test_rows=None))
    main([str(tmp_path), "--no-plots"])
    table = (tmp_path / "table.md").read_text()
    assert "| gelora | 1 | 1 | +2.00 |" in table
    assert "1 pair paired without a test-row fingerprint (older records)." in table
    assert "2 completed run(s) recorded no test-row fingerprint." in table


def test_holm_adjustment_matches_a_hand_computed_case():
    # m = 4 tested: sorted 0.01, 0.02, 0.03, 0.5 -> 4(0.01) = 0.04, 3(0.02) = 0.06, then
    # 2(0.03) = 0.06 (held at least as large as the one before), 1(0.5) = 0.5.
    raw = [0.03, None, 0.01, 0.5, 0.02]
    assert holm_adjusted(raw) == pytest.approx([0.06, None, 0.04, 0.5, 0.06])
    # Never below the raw p, never above 1, and the largest p alone is left as it is.
    assert holm_adjusted([0.4, 0.9]) == pytest.approx([0.8, 0.9])
    assert holm_adjusted([0.6, 0.7, 0.8]) == [1.0, 1.0, 1.0]
    assert holm_adjusted([None, None]) == [None, None]


def test_the_paired_table_adjusts_the_rows_p_values_together():
    # Two methods, each 8 pairs, both winning on every pair: Wilcoxon p = 2 / 2**8 each.
    runs = []
    for seed in range(8):
        runs.append(_run("lora", "sst", seed, 0.80))
        runs.append(_run("gelora", "sst", seed, 0.81 + seed / 1000))
        runs.append(_run("random", "sst", seed, 0.82 + seed / 1000))
    from gelora.table.paired_tables import paired_markdown, paired_section

    table = paired_markdown(paired_section(runs, "lora"))
    assert "| 0.00781 | 0.0156 | 8/0/0 |" in table  # raw 2/256, Holm 2 x 2/256 for both
    assert "Holm's step-down method, 1979, over the 2 p-values given" in table


def test_wilcoxon_gives_no_p_for_too_few_or_all_zero_differences():
    assert wilcoxon_test([1.0, 2.0, 3.0, -0.5, 4.0]).text() == "n/a (only 5 non-zero pairs)"
    assert wilcoxon_test([0.0] * 8).text() == "n/a (all differences zero)"
    assert wins_ties_losses([1.0, 0.0, -2.0, 3.0]) == (2, 1, 1)


def test_pairs_scored_on_different_test_rows_are_refused_and_named(tmp_path, capsys):
    runs = [_run("lora", "sst", seed, 0.80, test_rows="rows-a") for seed in range(3)]
    runs += [
        _run("gelora", "sst", 0, 0.82, test_rows="rows-a"),
        _run("gelora", "sst", 1, 0.83, test_rows="rows-b"),
        _run("gelora", "sst", 2, 0.84, test_rows=None),  # no fingerprint
    ]
    pairs, refused = pair_runs(runs, "gelora", "lora")
    assert [p.seed for p in pairs] == [0]
    assert [(r.seed, r.reason) for r in refused] == [
        (1, "scored on different test rows"),
        (2, "scored on different test rows"),
    ]
    # From a sweep, rows-b would be a column of its own (never paired across columns); a record
    # without a fingerprint shares its task's one row set, and its pair is refused and named.
    for seed in range(3):
        _job(tmp_path, "lora", "sst", seed, _completed(0.80))
    _job(tmp_path, "gelora", "sst", 0, _completed(0.82))
    _job(tmp_path, "gelora", "sst", 1, _completed(0.83, test_rows=None))  # no fingerprint
    main([str(tmp_path), "--no-plots", "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    line = "Refused 1 pair scored on different test rows: gelora/sst/seed=1."
    assert line in printed.splitlines()
    table = (tmp_path / "out" / "table.md").read_text()
    assert "## Paired differences versus lora" in table
    row = (
        "| gelora | 1 | 1 | +2.00 | - | - | no verdict: only 1 pair | [+2.00, +2.00] | "
        "[+2.00, +2.00] | n/a (only 1 non-zero pair) | - | 1/0/0 |"
    )
    assert row in table
    assert "identical test rows" in table and line in table
    assert "Paired differences versus lora" in (tmp_path / "out" / "table.tex").read_text()


def test_paired_section_is_one_line_without_the_reference(tmp_path, capsys):
    for seed in (0, 1):  # no lora row: the default reference is absent (an explicit one is refused)
        _job(tmp_path, "gelora", "sst", seed, _completed(0.8))
    main([str(tmp_path), "--no-plots"])
    table = (tmp_path / "table.md").read_text()
    assert "No paired differences: reference method 'lora' is not in this sweep." in table
    assert "Paired differences versus" not in table


def test_caption_states_the_scaling_rule():
    runs = [_run("lora", "sst", 0, 0.8), _run("gelora", "sst", 0, 0.8)]
    runs[0].scaling = runs[1].scaling = "alpha/r = 2"
    assert "LoRA scaling: alpha/r = 2 for every row." in markdown_table(runs)
    runs[1].scaling = "alpha/sqrt(r) = 4"
    assert "LoRA scaling per method: lora: alpha/r = 2; gelora: alpha/sqrt(r) = 4." in (
        latex_table(runs)
    )


def test_select_lr_chooses_on_validation_never_test(tmp_path, capsys):
    sweep = tmp_path / "lr_sweep"
    # sst: validation ties 3e-4 and 1e-3 (the smaller wins); test would pick 1e-3.
    # news: validation picks 1e-3; test would pick 1e-4.
    grid = {
        ("sst", 1e-4): (0.80, 0.90),
        ("sst", 3e-4): (0.85, 0.70),
        ("sst", 1e-3): (0.85, 0.95),
        ("news", 1e-4): (0.50, 0.99),
        ("news", 1e-3): (0.60, 0.40),
    }
    for (task, lr), (val, test) in grid.items():
        _job(sweep, "lora", task, 0, _completed(test, val=val, lr=lr), lr=lr)
    _job(sweep, "gelora", "sst", 0, _completed(0.8, val=0.8, lr=3e-5), lr=3e-5)
    _job(sweep, "gelora", "sst", 0, {"status": "failed", "learning_rate": 1e-3}, lr=1e-3)
    out = tmp_path / "conf" / "lr_choice.yaml"
    main([str(sweep), "--select-lr", str(out)])
    choice = OmegaConf.load(out)
    assert OmegaConf.to_container(choice) == {
        "lr_choice": {"lora": {"sst": 3e-4, "news": 1e-3}, "gelora": {"sst": 3e-5}}
    }
    assert isinstance(choice.lr_choice.gelora.sst, float)
    text = out.read_text()
    assert text.startswith(f"# chosen by gelora-table --select-lr from {sweep}: best validation")
    assert "gelora:\n    sst: 0.00003\n" in text
    printed = capsys.readouterr().out
    assert "| lora | 0.0001: 80.00, **0.0003: 85.00**, 0.001: 85.00 (margin 0.00) |" in printed
    assert "**3e-05: 80.00**, 0.001: no score" in printed
    (edge,) = [line for line in printed.splitlines() if line.startswith("At the top of the grid")]
    assert edge.endswith(": lora/news (0.001).")  # not lora/sst (3e-4 of 1e-3), nor gelora (1 rate)
    assert not (sweep / "table.md").exists()  # a selection sweep is no results table
    assert choose_lr({1e-3: None}) is None


def test_select_lr_waits_for_the_whole_grid(tmp_path, capsys):
    sweep = tmp_path / "lr_sweep"
    _job(sweep, "lora", "sst", 0, _completed(0.8, val=0.8, lr=3e-4), lr=3e-4)
    _job(sweep, "lora", "sst", 0, None, lr=1e-3)  # still running: no results.json yet
    out = tmp_path / "lr_choice.yaml"
    with pytest.raises(SystemExit) as stopped:
        main([str(sweep), "--select-lr", str(out)])
    assert stopped.value.code == 2 and not out.exists()
    error = capsys.readouterr().err
    assert "grid is not finished" in error and "lora/sst (1)" in error


def test_select_lr_refuses_a_completed_run_without_a_validation_score(tmp_path, capsys):
    sweep = tmp_path / "lr_sweep"
    _job(sweep, "lora", "sst", 0, _completed(0.8, val=0.8, lr=3e-4), lr=3e-4)
    unscored = _completed(0.9, lr=1e-3)
    unscored["metrics"] = {"test/accuracy": 0.9}  # resumed after its last step, no val logged
    _job(sweep, "lora", "sst", 0, unscored, lr=1e-3)
    out = tmp_path / "lr_choice.yaml"
    with pytest.raises(SystemExit) as stopped:
        main([str(sweep), "--select-lr", str(out)])
    assert stopped.value.code == 2 and not out.exists()  # 3e-4 would have won by default
    assert "without a validation score in lora/sst (1)" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="without a validation score in lora/sst"):
        _extend_lr_grid().extension_overrides(sweep)


def test_a_missing_sweep_dir_is_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "out"
    for sweep_dir, says in [
        (tmp_path / "nope", "does not exist"),
        (tmp_path / "file.txt", "is not a directory"),
        (tmp_path / "empty", "no Hydra job directories"),
    ]:
        if sweep_dir.suffix:
            sweep_dir.write_text("x")
        elif sweep_dir.name == "empty":
            sweep_dir.mkdir()
        with pytest.raises(SystemExit) as stop:
            main([str(sweep_dir), "--out", str(out)])
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("gelora-table: error: ") and says in err
        assert not out.exists()


def test_every_option_has_help():
    actions = [a for a in argument_parser()._actions if a.dest != "help"]
    assert {a.dest for a in actions} >= {"sweep_dir", "out", "rows", "no_plots", "versus"}
    assert all(a.help for a in actions)


def test_a_single_seed_cell_shows_no_spread(tmp_path):
    assert Cell([0.5], n_runs=1, n_failed=0, n_missing=0).text() == "50.00 n=1"
    assert Cell([0.5], 2, 1, 0).text(latex=True) == "50.00 n=1 (1 failed)"
    table = markdown_table(load_runs(_sweep(tmp_path)))
    lora_row = next(line for line in table.splitlines() if line.startswith("| lora "))
    assert "| 50.00 n=1 |" in lora_row and "0.00 [" not in lora_row


def test_latex_escape_covers_every_special_character():
    assert latex_escape(r"a\b&c%d$e#f_g{h}i~j^k") == (
        r"a\textbackslash{}b\&c\%d\$e\#f\_g\{h\}i\textasciitilde{}j\textasciicircum{}k"
    )
    runs = [_run("lora_r#2 & 50%", "sst_2", 0, 0.8)]
    assert r"lora\_r\#2 \& 50\% & " in latex_table(runs)


def test_older_records_read_each_built_in_metric_the_way_its_kind_states_it():
    # records before metric_modes are read by the table's lists: they must agree with the kinds
    from gelora.kinds import kind_of
    from gelora.training.instruct_metrics import INSTRUCTION_METRICS
    from gelora.training.metrics import METRICS
    from gelora.training.qa_metrics import QA_METRICS

    built_in = {
        "classification": [m for m, spec in METRICS.items() if spec.problem == "classification"],
        "regression": [m for m, spec in METRICS.items() if spec.problem == "regression"],
        "extractive_qa": list(QA_METRICS),
        "instruction": list(INSTRUCTION_METRICS),
    }
    for kind, metrics in built_in.items():
        for metric in metrics:
            mode = kind_of(kind).metric_mode(metric)
            assert mode == ("max" if metric in HIGHER_IS_BETTER else "min"), (kind, metric)
            assert metric in (HIGHER_IS_BETTER if mode == "max" else LOWER_IS_BETTER)
    assert set(METRICS) | set(QA_METRICS) | set(INSTRUCTION_METRICS) == (
        HIGHER_IS_BETTER | LOWER_IS_BETTER
    )


def test_a_records_own_direction_is_read_before_the_built_in_lists():
    score = _run("lora", "t", 0, 0.8)
    stated = replace(score, metric="hamming_loss", metric_mode="min")
    assert sweep_direction([stated]) == Direction(-1, 1, "hamming_loss")
    assert sweep_direction([replace(stated, metric="micro_f1", metric_mode="max")]).sign == 1
    with pytest.raises(ValueError, match="micro_f1 is not known"):  # an older record: no mode
        sweep_direction([replace(stated, metric="micro_f1", metric_mode=None)])


def test_paired_differences_plot_marks_each_mean_and_pair(tmp_path, monkeypatch):
    from gelora.table import sweep_plots
    from gelora.table.paired_tables import paired_section

    section = paired_section(load_runs(_sweep(tmp_path / "sweep")), "lora")
    shown = {}
    monkeypatch.setattr(
        sweep_plots, "save_figure", lambda figure, path: shown.setdefault("f", figure)
    )
    sweep_plots.plot_paired_differences(section, tmp_path / "forest.png")
    (ax,) = shown["f"].axes
    points = [tuple(line.get_xdata()) for line in ax.get_lines() if line.get_marker() == "o"]
    means = [line.get_xdata()[0] for line in ax.get_lines() if line.get_marker() == "D"]
    assert sorted(p[0] for p in points) == pytest.approx([-10.0, -10.0, -10.0])  # 3 sst pairs
    assert means == pytest.approx([-10.0])  # gelora minus lora, every pair 10 points down
    assert [t.get_text() for t in ax.get_yticklabels()] == ["gelora"]


@pytest.mark.parametrize("rows", [3, 12, 23])
def test_every_row_of_the_plan_and_score_figures_has_its_own_colour(tmp_path, monkeypatch, rows):
    from gelora.table import sweep_plots

    runs = []
    for k in range(rows):
        run = _run(f"method{k}", "sst", 0, 0.5 + k / 100)
        run.block_ranks, run.adapter_params = [1, 2, 3], 1000 + k
        runs.append(run)
    shown = []
    monkeypatch.setattr(sweep_plots, "save_figure", lambda figure, path: shown.append(figure))
    sweep_plots.plot_rank_plans(runs, tmp_path / "plans.png")
    sweep_plots.plot_score_vs_params(runs, tmp_path / "scores.png")
    (bars_ax,), (points_ax,) = (figure.axes for figure in shown)
    bar_colours = {c.get_label(): c.patches[0].get_facecolor() for c in bars_ax.containers}
    point_colours = {c.get_label(): c.lines[0].get_color() for c in points_ax.containers}
    assert len(bar_colours) == rows and len(set(bar_colours.values())) == rows
    assert len(point_colours) == rows and len(set(map(str, point_colours.values()))) == rows


def test_command_draws_the_paired_differences_when_there_are_pairs(tmp_path):
    main([str(_sweep(tmp_path / "sweep")), "--out", str(tmp_path / "out")])
    assert (tmp_path / "out" / "paired_differences.png").stat().st_size > 5_000
    _job(tmp_path / "gelora_only", "gelora", "sst", 0, _completed(0.8))
    main([str(tmp_path / "gelora_only"), "--out", str(tmp_path / "alone")])
    assert not (tmp_path / "alone" / "paired_differences.png").exists()  # no lora: no pairs


def _loss(test: float, val: float, lr: float = 1e-3) -> dict:
    run = _completed(test, lr=lr)
    run["metrics"] = {"test/response_loss": test, "val/response_loss_best": val}
    run["metric"], run["metric_names"] = "response_loss", ["response_loss", "perplexity"]
    return run


def test_a_loss_is_tabled_as_it_is_and_a_lower_loss_wins(tmp_path, capsys):
    for seed, (lora, gelora) in enumerate([(1.70, 1.65), (1.72, 1.69), (1.68, 1.70)]):
        _job(tmp_path / "sweep", "lora", "alpaca_demo", seed, _loss(lora, lora))
        _job(tmp_path / "sweep", "gelora", "alpaca_demo", seed, _loss(gelora, gelora))
    main([str(tmp_path / "sweep"), "--out", str(tmp_path / "out"), "--no-plots"])
    table = (tmp_path / "out" / "table.md").read_text()
    assert "| lora | 1.0k | 1.70 +/- 0.02 [1.70] n=3 |" in table  # not x100
    assert "response_loss as it is (not x100); lower is better" in table
    section = paired_or_reason(load_runs(tmp_path / "sweep"), "lora")[0]
    (gelora,) = section.overall
    assert gelora.differences == pytest.approx([0.05, 0.03, -0.02])  # lora's loss minus gelora's
    assert gelora.wins_ties_losses == (2, 0, 1)
    assert "lora's test response_loss minus the method's" in section.caption


def test_select_lr_takes_the_lowest_validation_loss(tmp_path, capsys):
    sweep = tmp_path / "lr_sweep"
    for lr, val in ((3e-4, 1.9), (1e-3, 1.7), (3e-3, 1.8)):
        _job(sweep, "lora", "alpaca_demo", 0, _loss(1.0, val, lr=lr), lr=lr)
    main([str(sweep), "--select-lr", str(tmp_path / "lr.yaml")])
    assert OmegaConf.load(tmp_path / "lr.yaml").lr_choice.lora.alpaca_demo == 1e-3
    printed = capsys.readouterr().out
    assert "**0.001: 1.70**" in printed and "lowest validation score" in printed
    assert "At the top of the grid" not in printed


def test_scores_and_losses_in_one_sweep_are_refused_in_one_line(tmp_path, capsys):
    _job(tmp_path, "lora", "alpaca_demo", 0, _loss(1.67, 1.71))
    _job(tmp_path, "lora", "sst", 0, _completed(0.8))
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path), "--no-plots", "--out", str(tmp_path / "out")])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert "accuracy, response_loss are not in one unit" in error
    assert not (tmp_path / "out").exists()  # no table that pools points with a loss


def _extend_lr_grid():
    path = Path(__file__).resolve().parents[1] / "experiments/extend_lr_grid.py"
    spec = importlib.util.spec_from_file_location("extend_lr_grid", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_grid_is_extended_by_half_decades_where_the_best_rate_is_its_largest(tmp_path):
    extend = _extend_lr_grid()
    steps = [3e-4]
    for _ in range(4):
        steps.append(extend.next_rate(steps[-1]))
    assert steps == [3e-4, 1e-3, 3e-3, 1e-2, 3e-2]
    sweep = tmp_path / "lr_grid"
    for lr, val in ((3e-4, 0.7), (1e-3, 0.8), (3e-3, 0.9)):  # lora/sst: best at the top
        _job(sweep, "lora", "sst", 0, _completed(0.5, val=val, lr=lr), lr=lr)
    for lr, val in ((3e-4, 0.7), (1e-3, 0.9), (3e-3, 0.8)):  # gelora/sst: best inside
        _job(sweep, "gelora", "sst", 0, _completed(0.5, val=val, lr=lr), lr=lr)
    assert extend.extension_overrides(sweep) == ["method=lora task=sst optimizer.lr=0.01"]
    _job(sweep, "lora", "sst", 0, _completed(0.5, val=0.85, lr=1e-2), lr=1e-2)
    assert extend.extension_overrides(sweep) == []  # 1e-2 ran and lost: 3e-3 is inside now
    _job(sweep, "gelora", "sst", 0, None, lr=1e-2)  # running: no verdict until it lands
    with pytest.raises(SystemExit, match="unfinished runs in gelora/sst"):
        extend.extension_overrides(sweep)


def test_the_grid_is_extended_downward_where_the_best_rate_is_its_smallest(tmp_path):
    extend = _extend_lr_grid()
    steps = [3e-3]
    for _ in range(4):
        steps.append(extend.previous_rate(steps[-1]))
    assert steps == [3e-3, 1e-3, 3e-4, 1e-4, 3e-5]
    assert all(extend.previous_rate(extend.next_rate(lr)) == lr for lr in (1e-4, 3e-4, 1e-2))
    sweep = tmp_path / "lr_grid"
    grids = {
        ("lora", "sst"): {3e-4: 0.9, 1e-3: 0.8, 3e-3: 0.7},  # bottom edge: extend to 1e-4
        ("lora", "news"): {3e-4: 0.7, 1e-3: 0.8, 3e-3: 0.9},  # top edge: extend to 1e-2
        ("gelora", "sst"): {3e-4: 0.7, 1e-3: 0.9, 3e-3: 0.8},  # inside: nothing
        ("gelora", "news"): {1e-3: 0.9},  # one rate: no edge to speak of
    }
    for (method, task), grid in grids.items():
        for lr, val in grid.items():
            _job(sweep, method, task, 0, _completed(0.5, val=val, lr=lr), lr=lr)
    assert sorted(extend.extension_overrides(sweep)) == [
        "method=lora task=news optimizer.lr=0.01",
        "method=lora task=sst optimizer.lr=0.0001",
    ]
    _job(sweep, "lora", "sst", 0, _completed(0.5, val=0.85, lr=1e-4), lr=1e-4)
    assert extend.extension_overrides(sweep) == ["method=lora task=news optimizer.lr=0.01"]


def test_both_edges_and_the_interior_of_a_grid(tmp_path, capsys):
    from gelora.table.lr_selection import LrChoice, at_bottom_of_grid, at_top_of_grid, grid_edge

    def choice(validation):
        from gelora.table.lr_selection import choose_lr

        return LrChoice("m", "t", validation, {}, choose_lr(validation))

    bottom = choice({1e-4: 0.9, 1e-3: 0.8})
    top = choice({1e-4: 0.8, 1e-3: 0.9})
    inside = choice({1e-4: 0.8, 3e-4: 0.9, 1e-3: 0.8})
    tie = choice({1e-4: 0.9, 1e-3: 0.9})  # ties go to the smaller rate: the bottom edge
    alone = choice({1e-3: 0.9, 3e-3: None})  # one scored rate: neither edge
    assert [grid_edge(c) for c in (bottom, top, inside, tie, alone)] == [
        "bottom", "top", None, "bottom", None,
    ]  # fmt: skip
    assert at_bottom_of_grid(bottom) and not at_top_of_grid(bottom)
    assert at_top_of_grid(top) and not at_bottom_of_grid(top)
    # gelora-table --select-lr names both edges, each in its own line
    sweep = tmp_path / "lr_sweep"
    for task, grid in (("sst", {3e-4: 0.9, 1e-3: 0.8}), ("news", {3e-4: 0.8, 1e-3: 0.9})):
        for lr, val in grid.items():
            _job(sweep, "lora", task, 0, _completed(0.5, val=val, lr=lr), lr=lr)
    main([str(sweep), "--select-lr", str(tmp_path / "lr.yaml")])
    printed = capsys.readouterr().out.splitlines()
    (low,) = [line for line in printed if line.startswith("At the bottom of the grid")]
    (high,) = [line for line in printed if line.startswith("At the top of the grid")]
    assert low.endswith(": lora/sst (0.0003).") and high.endswith(": lora/news (0.001).")


def _budget_lr_job(root: Path, method: str, rank: int, lr: float, val: float) -> None:
    """One job of a learning-rate grid that also sweeps budget.rank (budget_curve_lr.yaml)."""
    job = _job(
        root, method, "rt", 0, _completed(0.5, val=val, lr=lr), lr=lr,
        name=f"budget.rank={rank},method={method},seed=0,task=rt",
    )  # fmt: skip
    saved = OmegaConf.load(job / ".hydra" / "config.yaml")
    saved.budget = {"rank": rank, "params": None}
    OmegaConf.save(saved, job / ".hydra" / "config.yaml")


def test_a_grid_per_budget_chooses_a_rate_per_budget(tmp_path, capsys):
    sweep = tmp_path / "budget_lr"
    best = {("lora", 1): 3e-3, ("lora", 2): 1e-3, ("lora", 4): 3e-4, ("gelora_budget", 1): 1e-3,
            ("gelora_budget", 2): 1e-3, ("gelora_budget", 4): 1e-3}  # fmt: skip
    for (method, rank), chosen in best.items():
        for lr in (3e-4, 1e-3, 3e-3):
            _budget_lr_job(sweep, method, rank, lr, 0.9 if lr == chosen else 0.8)
    out = tmp_path / "lr_choice.yaml"
    # one rate per task would pool the ranks' scores: refused, naming the per-budget way
    with pytest.raises(SystemExit) as refused:
        main([str(sweep), "--select-lr", str(out)])
    assert refused.value.code == 2
    assert "3 runs of gelora_budget/rt at learning rate 0.0003 have seed 0" in (
        capsys.readouterr().err
    )
    assert not out.exists()
    main([str(sweep), "--columns", "budget.rank", "--select-lr", str(out)])
    assert OmegaConf.to_container(OmegaConf.load(out)) == {
        "lr_choice": {
            "lora": {"rt": {"rank_1": 3e-3, "rank_2": 1e-3, "rank_4": 3e-4}},
            "gelora_budget": {"rt": {"rank_1": 1e-3, "rank_2": 1e-3, "rank_4": 1e-3}},
        }
    }
    printed = capsys.readouterr().out
    assert "lora/rt budget.rank=4 (0.0003)" in printed  # bottom of its grid
    assert "lora/rt budget.rank=1 (0.003)" in printed  # top of its grid
    # the experiment config reads each budget's own rate
    choice = OmegaConf.load(out)
    for rank, lr in ((1, 3e-3), (2, 1e-3), (4, 3e-4)):
        cfg = OmegaConf.merge(
            choice,
            {"budget": {"rank": rank}, "lr_choice_key": "rank_${budget.rank}"},
            {"lr": "${lr_choice.lora.rt.${lr_choice_key}}"},
        )
        assert cfg.lr == lr
    extend = _extend_lr_grid()
    assert sorted(extend.extension_overrides(sweep, "budget.rank")) == [
        "method=lora task=rt budget.rank=1 optimizer.lr=0.01",
        "method=lora task=rt budget.rank=4 optimizer.lr=0.0001",
    ]


def _budget_sweep(root: Path) -> Path:
    """lora and gelora_budget at budget.rank 1, 2, 4 on one task, 3 seeds; gelora_budget is
    +2 points at rank 1, level at rank 2, -1 at rank 4 on every seed."""
    for rank, edge in ((1, 0.02), (2, 0.0), (4, -0.01)):
        for seed in range(3):
            score = 0.70 + 0.01 * rank + 0.005 * seed
            for method, delta in (("lora", 0.0), ("gelora_budget", edge)):
                _job(root / f"budget.rank={rank}", method, "rt", seed,
                     _completed(score + delta, params=1000 * rank))  # fmt: skip
                config = root / f"budget.rank={rank}/method={method},seed={seed},task=rt/.hydra"
                saved = OmegaConf.load(config / "config.yaml")
                saved.budget = {"rank": rank, "params": None}
                OmegaConf.save(saved, config / "config.yaml")
    return root


def test_columns_split_each_task_by_a_setting_and_pair_within_it(tmp_path, capsys):
    sweep = _budget_sweep(tmp_path / "budget")
    main([str(sweep), "--columns", "budget.rank", "--out", str(tmp_path / "out"), "--no-plots"])
    table = (tmp_path / "out" / "table.md").read_text()
    header = table.splitlines()[0]
    assert "rt budget.rank=1 (accuracy)" in header and "rt budget.rank=4 (accuracy)" in header
    from gelora.table.paired_tables import paired_section
    from gelora.table.sweep_runs import split_by_column

    runs = split_by_column(load_runs(sweep), "budget.rank")
    section = paired_section(runs, "lora")
    per_rank = {
        rank: section.per_task["gelora_budget", f"rt budget.rank={rank}"].mean_difference
        for rank in (1, 2, 4)
    }
    assert per_rank == pytest.approx({1: 2.0, 2: 0.0, 4: -1.0})
    (overall,) = section.overall
    assert len(overall.pairs) == 9 and overall.wins_ties_losses == (3, 3, 3)
    with pytest.raises(SystemExit) as stop:
        main([str(sweep), "--columns", "lora.rank", "--no-plots"])
    assert stop.value.code == 2 and "no value for 'lora.rank'" in capsys.readouterr().err


def test_the_curve_plots_scores_at_each_cost_and_the_paired_difference_below(tmp_path, monkeypatch):
    from gelora.table import sweep_plots
    from gelora.table.paired_tables import paired_section
    from gelora.table.sweep_runs import split_by_column

    runs = split_by_column(load_runs(_budget_sweep(tmp_path / "budget")), "budget.rank")
    shown = {}
    monkeypatch.setattr(
        sweep_plots, "save_figure", lambda figure, path: shown.setdefault("f", figure)
    )
    sweep_plots.plot_curve(runs, paired_section(runs, "lora"), "budget.rank", tmp_path / "c.png")
    top, bottom = shown["f"].axes
    curves = {bars.get_label(): bars.lines[0] for bars in top.containers}  # errorbar's data line
    assert list(curves["lora"].get_xdata()) == [1000, 2000, 4000]
    assert list(curves["lora"].get_ydata()) == pytest.approx([71.5, 72.5, 74.5])
    assert list(curves["gelora_budget"].get_ydata()) == pytest.approx([73.5, 72.5, 73.5])
    marks = [
        (bars.lines[0].get_xdata()[0], bars.lines[0].get_ydata()[0]) for bars in bottom.containers
    ]
    assert [x for x, _ in sorted(marks)] == [1000, 2000, 4000]
    assert [y for _, y in sorted(marks)] == pytest.approx([2.0, 0.0, -1.0])
    monkeypatch.undo()  # the command saves its figures
    main([str(tmp_path / "budget"), "--columns", "budget.rank", "--out", str(tmp_path / "o")])
    assert (tmp_path / "o" / "curve.png").stat().st_size > 5_000


def test_user_data_sets_and_metrics_are_separate_columns_never_one_cell(tmp_path):
    # Two of a user's data sets, both task from_files: a classification run (accuracy) and a
    # regression run (pearson). They are two columns named by their files, not one cell of n=2.
    reviews = {"train_file": "data/reviews.csv", "test_file": None, "problem": "classification"}
    scores = {"train_file": "data/scores.csv", "test_file": "data/scores_test.csv"}
    _job(tmp_path, "lora", "from_files", 0, _completed(0.80, test_rows="rows-r"),
         task_config=reviews, name="a")  # fmt: skip
    regression = _completed(0.50, test_rows="rows-s")
    regression |= {"metric": "pearson", "metrics": {"test/pearson": 0.5, "val/pearson_best": 0.5}}
    _job(tmp_path, "lora", "from_files", 0, regression, task_config=scores, name="b")
    table = markdown_table(load_runs(tmp_path))
    header, _, row = table.splitlines()[:3]
    assert "| from_files(data/reviews.csv) (accuracy) |" in header
    assert "| from_files(train=data/scores.csv, test=data/scores_test.csv) (pearson) |" in header
    assert "n=2" not in row and "| 80.00 n=1 | 50.00 n=1 |" in row
    # The same file scored with two metrics (classification, then regression) is two columns too.
    again = _completed(0.70, test_rows="rows-r")
    again |= {"metric": "macro_f1", "metrics": {"test/macro_f1": 0.7}}
    _job(tmp_path, "lora", "from_files", 1, again, task_config=reviews, name="c")
    header = markdown_table(load_runs(tmp_path)).splitlines()[0]
    assert "| from_files(data/reviews.csv) [accuracy] (accuracy) |" in header
    assert "| from_files(data/reviews.csv) [macro_f1] (macro_f1) |" in header


def test_the_data_set_name_comes_from_the_records_config_when_it_has_one(tmp_path):
    run = _completed(0.8) | {"config": {"task": {"name": "from_files", "train_file": "x.tsv"}}}
    job = _job(tmp_path, "lora", "from_files", 0, run)
    (row,) = load_runs(tmp_path)
    assert (row.task, row.task_name) == ("from_files(x.tsv)", "from_files")
    (job / "results.json").write_text(json.dumps(json.loads((job / "results.json").read_text())
                                                 | {"config": None}))  # fmt: skip
    (row,) = load_runs(tmp_path)
    assert row.task == "from_files"  # the Hydra config says nothing of files either: the name


def test_runs_scored_on_different_test_rows_are_never_pooled_in_one_cell(tmp_path, capsys):
    # rotten_tomatoes at the full test split (seeds 0, 1) and capped by task.max_eval_samples
    # (seed 2): two row sets, two columns; the pairs stay within a column.
    for seed in range(3):
        rows = ("aaaaaaaa1111", 1000) if seed < 2 else ("bbbbbbbb2222", 100)
        for method, score in (("lora", 0.80), ("gelora", 0.82)):
            result = _completed(score + seed / 100, test_rows=rows[0], n_test_rows=rows[1])
            _job(tmp_path, method, "rotten_tomatoes", seed, result)
    _job(tmp_path, "gelora", "rotten_tomatoes", 3, None)  # missing: its rows are not known
    main([str(tmp_path), "--no-plots", "--out", str(tmp_path / "out")])
    table = (tmp_path / "out" / "table.md").read_text()
    header = table.splitlines()[0]
    lora, gelora = (next(x for x in table.splitlines() if x.startswith(f"| {m} ")) for m in
                    ("lora", "gelora"))  # fmt: skip
    full = "rotten_tomatoes [1000 test rows, sha256 aaaaaaaa]"
    capped = "rotten_tomatoes [100 test rows, sha256 bbbbbbbb]"
    unknown = "rotten_tomatoes [test rows not recorded]"
    assert f"| {full} (accuracy) | {capped} (accuracy) | {unknown} (?) | average |" in header
    assert "| 80.50 +/- 0.71 [80.50] n=2 | 82.00 n=1 | - | - |" in lora
    assert "| 82.50 +/- 0.71 [82.50] n=2 | 84.00 n=1 | 1 missing | - |" in gelora
    note = (
        "Columns split by test rows (runs scored on different test rows are never pooled): "
        "rotten_tomatoes (2 row sets); no average, as it would count such a task more than once."
    )
    assert note in table
    assert "Every completed run of a column was scored on the same test rows (sha256)." in table
    assert "| gelora | 2 | 3 | +2.00 |" in table  # every pair within its own column, none refused
    warning = (
        "gelora-table: warning: rotten_tomatoes was scored on 2 different test-row sets "
        "(1000 rows, sha256 aaaaaaaa: 4 runs; 100 rows, sha256 bbbbbbbb: 2 runs): one column each"
    )
    assert warning in capsys.readouterr().err.splitlines()


def test_records_older_than_fingerprints_share_their_tasks_column(tmp_path):
    _job(tmp_path, "lora", "sst", 0, _completed(0.80))
    _job(tmp_path, "lora", "sst", 1, _completed(0.82, test_rows=None))  # before eval_rows
    table = markdown_table(load_runs(tmp_path))
    assert table.splitlines()[0].startswith("| method | adapter params | sst (accuracy) |")
    assert "n=2" in table and "1 completed run(s) recorded no test-row fingerprint." in table


def test_a_broken_job_is_named_skipped_and_counted_not_fatal(tmp_path, capsys):
    sweep = _sweep(tmp_path / "sweep")
    bad_config = _job(sweep, "lora", "sst", 7, _completed(0.1), name="bad_config")
    (bad_config / ".hydra" / "config.yaml").write_text("task: {name: sst\nseed: [7\n")
    bad_record = _job(sweep, "lora", "sst", 8, _completed(0.1), name="bad_record")
    (bad_record / "results.json").write_text('{"status": "completed", "metrics": ')
    main([str(sweep), "--no-plots", "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "skipped" in line]
    assert len(warnings) == 2
    assert warnings[0].startswith(
        f"gelora-table: warning: skipped {bad_config}/.hydra/config.yaml: not valid YAML ("
    )
    assert warnings[1].startswith(
        f"gelora-table: warning: skipped {bad_record}/results.json: not valid JSON ("
    )
    table = (tmp_path / "out" / "table.md").read_text()
    lora_row = next(line for line in table.splitlines() if line.startswith("| lora "))
    assert "84.00 +/- 5.29 [82.00] n=3 |" in lora_row  # the two broken jobs are in no cell
    assert "failed" not in lora_row
    skipped = (
        "Skipped 2 jobs whose files could not be read (in no cell): "
        "bad_config/.hydra/config.yaml (not valid YAML), bad_record/results.json (not valid JSON)."
    )
    assert skipped in table and skipped in (tmp_path / "out" / "table.tex").read_text()
    assert "9 runs: " in captured.out and "2 jobs skipped (unreadable files)" in captured.out
    rows = list(csv.DictReader((tmp_path / "out" / "runs.csv").open()))
    assert len(rows) == 9


def test_a_record_of_the_wrong_shape_is_skipped_too(tmp_path, capsys):
    _job(tmp_path, "lora", "sst", 0, _completed(0.8))
    _job(tmp_path, "lora", "sst", 1, {"status": "completed", "metrics": [1, 2]})
    _job(tmp_path, "lora", "sst", 2, {"status": "exploded"})
    (job,) = [p for p in tmp_path.iterdir() if "seed=0" in p.name]
    other = _job(tmp_path, "lora", "sst", 3, _completed(0.8), name="no_hydra_yaml")
    (other / ".hydra" / "hydra.yaml").write_text(": :\n  - [")
    runs = load_runs(tmp_path)
    assert [r.run_dir for r in runs] == [str(job)]
    main([str(tmp_path), "--no-plots", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert err.count("gelora-table: warning: skipped ") == 3
    assert "seed=1,task=sst/results.json: not a run record (" in err
    assert "seed=2,task=sst/results.json: not a run record (ValueError: status must be" in err
    assert "no_hydra_yaml/.hydra/hydra.yaml: not valid YAML (" in err


def test_a_sweep_where_no_job_can_be_read_is_one_line_and_exit_2(tmp_path, capsys):
    job = _job(tmp_path, "lora", "sst", 0, _completed(0.8))
    (job / "results.json").write_text("{")
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path), "--no-plots", "--out", str(tmp_path / "out")])
    assert stop.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == f"gelora-table: error: no job under {tmp_path} could be read (1 skipped)"


def test_select_lr_refuses_two_data_sets_under_one_task_name(tmp_path, capsys):
    for k, train in enumerate(("a.csv", "b.csv")):
        _job(tmp_path, "lora", "from_files", 0, _completed(0.8, lr=1e-3, test_rows=f"r{k}"),
             lr=1e-3, task_config={"train_file": train}, name=f"d{k}")  # fmt: skip
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path), "--select-lr", str(tmp_path / "lr.yaml")])
    assert stop.value.code == 2 and not (tmp_path / "lr.yaml").exists()
    assert (
        "lr_choice.lora.from_files would hold one rate for 2 columns (from_files(a.csv), "
        "from_files(b.csv)); select learning rates in separate sweeps"
    ) in capsys.readouterr().err


def test_a_data_set_under_an_absolute_path_is_named_by_its_last_folder_and_file():
    from gelora.table.sweep_runs import data_label

    task = {"name": "from_files", "train_file": "/home/me/data/sst/train.csv", "test_file": None}
    assert data_label(task) == "from_files(.../sst/train.csv)"  # no machine's folders in a table
    assert data_label({"name": "rotten_tomatoes", "max_eval_samples": 100}) is None


def test_final_adapter_parameters_and_their_distance_from_the_budget(tmp_path):
    """AdaLoRA starts above its budget and prunes to a count matched in rank units only: the
    params column shows the final counts, and the caption says by how much they differ."""
    budget = 82_944
    for seed, final in enumerate([78_408, 85_320, 91_080]):
        adalora = _completed(0.7, params=124_524) | {
            "budget_params": budget,
            "method_summary": {"initial_adapter_params": 124_524, "final_adapter_params": final},
        }
        _job(tmp_path, "adalora", "rt", seed, adalora)
        _job(
            tmp_path, "lora", "rt", seed, _completed(0.7, params=budget) | {"budget_params": budget}
        )
        _job(
            tmp_path, "head_only", "rt", seed, _completed(0.6, params=0) | {"budget_params": budget}
        )
        _job(tmp_path, "gelora", "rt", seed, _completed(0.7, params=55_296))  # no budget
    runs = load_runs(tmp_path)
    adalora = [r for r in runs if r.method == "adalora"]
    assert sorted(r.adapter_params for r in adalora) == [78_408, 85_320, 91_080]
    assert {r.initial_adapter_params for r in adalora} == {124_524}
    table = markdown_table(runs)
    row = next(line for line in table.splitlines() if line.startswith("| adalora "))
    assert "| 78.4k-91.1k |" in row  # not the 124.5k it started with
    assert (
        "Adapter parameters off the budget: adalora: final adapter parameters 78,408-91,080 "
        "(budget 82,944; -5.5% to +9.8%)." in table
    )  # lora is on its budget; head_only has no adapters; gelora has no budget
    from gelora.table.tables import budget_lines

    assert budget_lines(runs) == [  # lora on its budget, head_only no adapters, gelora no budget
        "adalora: final adapter parameters 78,408-91,080 (budget 82,944; -5.5% to +9.8%)"
    ]
    assert "-5.5% to +9.8%" in latex_table(runs)
    rows = list(csv.DictReader((_csv(runs, tmp_path)).open()))
    assert {r["budget_params"] for r in rows if r["method"] == "lora"} == {str(budget)}


def _csv(runs, tmp_path: Path) -> Path:
    from gelora.table.tables import write_csv

    write_csv(runs, tmp_path / "runs.csv")
    return tmp_path / "runs.csv"


def test_one_final_count_off_the_budget_is_one_number(tmp_path):
    from gelora.table.tables import budget_lines

    eva = _completed(0.7, params=81_408) | {"budget_params": 82_944}
    _job(tmp_path, "eva", "rt", 0, eva)
    assert budget_lines(load_runs(tmp_path)) == [
        "eva: final adapter parameters 81,408 (budget 82,944; -1.9%)"
    ]


def test_the_table_says_which_runs_stopped_early(tmp_path):
    for seed in range(3):
        stopped = {"stopped_early": seed < 2, "best_step": 100, "optimizer_steps": 200}
        _job(tmp_path, "lora", "rt", seed, _completed(0.7) | stopped)
        _job(tmp_path, "gelora", "rt", seed, _completed(0.7) | {"stopped_early": False})
    runs = load_runs(tmp_path)
    assert sorted(r.stopped_early for r in runs if r.method == "lora") == [False, True, True]
    table = markdown_table(runs)
    assert "before the step cap): lora 2 of 3 completed runs." in table  # gelora: none
    rows = list(csv.DictReader(_csv(runs, tmp_path / "..").open()))
    assert sorted(r["stopped_early"] for r in rows if r["method"] == "lora") == [
        "False", "True", "True",
    ]  # fmt: skip
    _job(tmp_path / "old", "lora", "rt", 0, _completed(0.7))  # a record before stopped_early
    assert "Stopped early" not in markdown_table(load_runs(tmp_path / "old"))


def test_a_run_that_reached_its_step_cap_did_not_stop_early(tmp_path):
    # Records made before 2026-12-02 said stopped_early when patience ran out at the cap's own
    # last validation; the step cap (trainer.max_steps in .hydra/config.yaml) says otherwise.
    for seed, steps in enumerate((1200, 900)):
        job = _job(tmp_path, "lora", "rt", seed, _completed(0.7) | {
            "stopped_early": True, "best_step": 900, "optimizer_steps": steps,
        })  # fmt: skip
        config = OmegaConf.load(job / ".hydra" / "config.yaml")
        config.trainer = {"max_steps": 1200}
        OmegaConf.save(config, job / ".hydra" / "config.yaml")
    runs = sorted(load_runs(tmp_path), key=lambda r: r.seed)
    assert [r.stopped_early for r in runs] == [False, True]


def test_a_run_short_of_its_epoch_cap_under_patience_stopped_early(tmp_path):
    # Records made on 2026-12-02 before the step-counted cap said stopped_early=false when patience
    # ran out inside the last epoch. The cap is the smaller of max_steps and max_epochs epochs of
    # the recorded training rows (2,400 rows in batches of 8: 300 steps, 4 epochs: 1,200 steps).
    cases = [(1100, 3, True), (1200, 3, False), (1100, None, False), (600, 3, True)]
    for seed, (steps, patience, _) in enumerate(cases):
        job = _job(tmp_path, "lora", "rt", seed, _completed(0.7) | {
            "stopped_early": False, "best_step": 800, "optimizer_steps": steps,
            "task_sizes": {"train": 2400, "validation": 1000, "test": 1276},
        }, task_config={"batch_size": 8})  # fmt: skip
        config = OmegaConf.load(job / ".hydra" / "config.yaml")
        config.trainer = {"max_steps": 1200 if seed < 3 else -1, "max_epochs": 4}
        config.early_stopping = {"patience": patience}
        OmegaConf.save(config, job / ".hydra" / "config.yaml")
    runs = sorted(load_runs(tmp_path), key=lambda r: r.seed)
    assert [r.stopped_early for r in runs] == [stopped for *_, stopped in cases]


def test_each_allocator_is_paired_with_its_own_shuffle(tmp_path):
    # Issue 30: fisher minus fisher_shuffled (the placement effect), gelora_budget minus shuffled,
    # named by the rows; each allocator's own runs only, same statistics as every section.
    scores = {"lora": 0.70, "fisher": 0.74, "fisher_shuffled": 0.71, "gelora_budget": 0.72,
              "shuffled": 0.72}  # fmt: skip
    for method, score in scores.items():
        for seed in range(3):
            _job(tmp_path, method, "rt", seed, _completed(score + 0.001 * seed))
    runs = load_runs(tmp_path)
    pairs = placement_pairs(list(dict.fromkeys(r.method for r in runs)), None)
    assert sorted(pairs) == [("fisher", "fisher_shuffled"), ("gelora_budget", "shuffled")]
    placements = placement_effects(runs, pairs)
    fisher = next(p for p in placements if p.row == "fisher").section
    assert [c.method for c in fisher.overall] == ["fisher"]
    assert fisher.overall[0].mean_difference == pytest.approx(3.0)  # points: 0.74 - 0.71
    text = placement_markdown(placements)
    assert "## fisher against its own shuffle (fisher_shuffled)" in text
    # --differing-plans applies to the placement sections too: seed 0's shuffle kept fisher's plan
    for run in runs:
        same_plan = run.method == "fisher" or run.seed == 0
        run.trained_ranks = {"q": 1, "v": 3} if same_plan else {"q": 3, "v": 1}

    def fisher_pairs(**rules) -> int:
        placements = placement_effects(runs, pairs, PairingRules(**rules))
        return len(next(p for p in placements if p.row == "fisher").section.overall[0].pairs)

    assert fisher_pairs() == 3 and fisher_pairs(differing_plans=True) == 2
    with pytest.raises(ValueError, match="--placement fisher:nope: no row 'nope'"):
        placement_pairs(["fisher", "fisher_shuffled"], ["fisher:nope"])
    with pytest.raises(ValueError, match="give ROW:CONTROL"):
        placement_pairs(["fisher"], ["fisher"])


def test_runs_of_another_sweep_join_the_table_and_a_job_in_both_is_refused(tmp_path, capsys):
    # Issue 30's arena reads its new rows against the committed table's lora runs (--with).
    arena, committed = tmp_path / "arena", tmp_path / "committed"
    for seed in range(3):
        _job(arena, "fisher", "rt", seed, _completed(0.72))
        _job(committed, "lora", "rt", seed, _completed(0.70))
    main([str(arena), "--with", str(committed), "--no-plots", "--out", str(tmp_path / "t")])
    table = (tmp_path / "t" / "table.md").read_text()
    assert "## Paired differences versus lora" in table and "| fisher | 1 | 3 |" in table
    _job(committed, "fisher", "rt", 0, _completed(0.72))
    with pytest.raises(SystemExit) as stop:
        main([str(arena), "--with", str(committed), "--no-plots", "--out", str(tmp_path / "u")])
    assert stop.value.code == 2
    assert "job method=fisher,seed=0,task=rt is in two sweep folders" in capsys.readouterr().err


def test_a_bad_placement_pair_is_one_line_and_writes_nothing(tmp_path, capsys):
    for seed in range(3):
        _job(tmp_path / "sweep", "fisher", "rt", seed, _completed(0.72))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path / "sweep"), "--placement", "fisher:nope", "--out", str(out)])
    assert stop.value.code == 2 and not out.exists()
    assert "--placement fisher:nope: no row 'nope'" in capsys.readouterr().err


def test_placement_effects_get_their_own_figure_when_a_pair_exists(tmp_path):
    for method, score in {"lora": 0.70, "fisher": 0.74, "fisher_shuffled": 0.71}.items():
        for seed in range(3):
            _job(tmp_path / "sweep", method, "rt", seed, _completed(score + 0.001 * seed))
    main([str(tmp_path / "sweep"), "--out", str(tmp_path / "out")])
    assert (tmp_path / "out" / "placement_effects.png").stat().st_size > 5_000
    assert (tmp_path / "out" / "placement_fisher.csv").is_file()
    _job(tmp_path / "alone", "lora", "rt", 0, _completed(0.70))
    _job(tmp_path / "alone", "fisher", "rt", 0, _completed(0.72))
    main([str(tmp_path / "alone"), "--out", str(tmp_path / "alone_out")])
    assert not (tmp_path / "alone_out" / "placement_effects.png").exists()  # no control row


# --- bad input and stale files (the bad-input audit) -----------------------------------------


def test_a_record_without_its_hydra_config_is_named_not_dropped(tmp_path, capsys):
    sweep = _sweep(tmp_path / "sweep")
    orphan = _job(sweep, "lora", "sst", 5, _completed(0.7), name="no_config")
    shutil.rmtree(orphan / ".hydra")
    main([str(sweep), "--no-plots", "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert (
        f"gelora-table: warning: skipped {orphan}/results.json: no .hydra/config.yaml beside it ("
        in captured.err
    )
    table = (tmp_path / "out" / "table.md").read_text()
    assert "no_config/results.json (no .hydra/config.yaml beside it)" in table
    assert "1 job skipped (unreadable files)" in captured.out


def test_out_that_is_a_file_is_one_line_before_anything_is_read(tmp_path, capsys):
    sweep = _sweep(tmp_path / "sweep")
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(SystemExit) as stop:
        main([str(sweep), "--no-plots", "--out", str(tmp_path / "afile")])
    assert stop.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"gelora-table: error: --out {tmp_path / 'afile'} is a file, not a folder"]
    assert (tmp_path / "afile").read_text() == "mine"


def test_a_versus_row_not_in_the_sweep_is_refused_and_the_default_is_not(tmp_path, capsys):
    sweep = _sweep(tmp_path / "sweep")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stop:
        main([str(sweep), "--no-plots", "--out", str(out), "--versus", "lroa"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "gelora-table: error: --versus lroa: no such row in this sweep; its rows: gelora, lora"
    )
    assert not out.exists()
    only_gelora = tmp_path / "only_gelora"
    _job(only_gelora, "gelora", "sst", 0, _completed(0.8))
    main([str(only_gelora), "--no-plots"])  # no --versus: lora is only the default
    assert "reference method 'lora' is not in this sweep" in (only_gelora / "table.md").read_text()


def test_a_rerun_without_pairs_removes_the_earlier_pairs_file(tmp_path, capsys):
    sweep = _sweep(tmp_path / "sweep")
    out = tmp_path / "out"
    main([str(sweep), "--no-plots", "--out", str(out)])
    assert (out / "paired.csv").is_file()
    (out / "placement_x.csv").write_text("an earlier table's\n")
    (out / "notes.txt").write_text("the user's own\n")
    for job in [p for p in sweep.iterdir() if p.name.startswith("method=lora,")]:
        shutil.rmtree(job)  # the reference's runs gone: this table has no pairs
    main([str(sweep), "--no-plots", "--out", str(out)])
    printed = capsys.readouterr().out
    assert not (out / "paired.csv").exists() and not (out / "placement_x.csv").exists()
    assert (out / "notes.txt").read_text() == "the user's own\n"
    assert "as this table has no such part: paired.csv, placement_x.csv" in printed
    assert "reference method 'lora' is not in this sweep" in (out / "table.md").read_text()


def test_select_lr_refuses_a_cell_that_ran_one_rate(tmp_path, capsys):
    for lr in (1e-3, 3e-3):
        _job(tmp_path, "lora", "sst", 0, _completed(0.8, lr=lr), lr=lr)
    _job(tmp_path, "gelora", "sst", 0, _completed(0.8, lr=1e-3), lr=1e-3)
    out = tmp_path / "lr.yaml"
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path), "--select-lr", str(out)])
    assert stop.value.code == 2
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .startswith(
            "gelora-table: error: one learning rate only in gelora/sst: --select-lr chooses among"
        )
    )
    assert not out.exists()


def test_a_completed_run_without_a_test_score_is_named_not_dropped(tmp_path, capsys):
    # issue 43: `"metrics": {}` in one of three seeds gave "n=2" and "3 runs: {'completed': 3}"
    for seed in range(3):
        results = _completed(0.8 + seed / 100)
        if seed == 1:
            results["metrics"] = {}
        _job(tmp_path, "lora", "sst", seed, results)
    out = tmp_path / "out"
    main([str(tmp_path), "--no-plots", "--out", str(out)])
    captured = capsys.readouterr()
    table = (out / "table.md").read_text()
    assert "n=2 (1 without a test score)" in table
    assert "1 completed run recorded no test score and is in no cell's mean or pair: " in table
    assert "lora/sst/seed=1" in table
    assert "1 completed without a test score (in no cell)" in captured.out
    (warning,) = [line for line in captured.err.splitlines() if "no test score" in line]
    assert "method=lora,seed=1,task=sst/results.json says completed" in warning


def test_the_table_shows_what_the_runs_cost_when_they_record_it(tmp_path):
    # issue 44: peak memory and throughput available as table columns
    for seed, (rss, pace) in enumerate([(900.0, 40.0), (1100.0, 60.0), (1000.0, 50.0)]):
        cost = {"peak_rss_mb": rss, "cuda_peak_allocated_mb": None, "samples_per_s": pace,
                "tokens_per_s": 10 * pace}  # fmt: skip
        _job(tmp_path, "lora", "sst", seed, _completed(0.8) | {"cost": cost})
    _job(tmp_path, "gelora", "sst", 0, _completed(0.8))  # an older record: no cost
    out = tmp_path / "out"
    main([str(tmp_path), "--no-plots", "--out", str(out)])
    table = (out / "table.md").read_text()
    assert "## What the runs cost" in table
    assert "| lora | 3 | 1,000 | - | 50.0 | 500 |" in table  # medians
    assert "| gelora |" not in table.split("## What the runs cost")[1].split("Medians")[0]
    (row,) = [r for r in csv.DictReader((out / "runs.csv").open()) if r["seed"] == "1"]
    assert (row["peak_rss_mb"], row["samples_per_s"]) == ("1100.0", "60.0")
