"""experiments/benchmarks/bench_commits.py on fake timings: the ABBA order, what a run's files
give, the paired ratio and its interval by hand, the rounds a spread needs, the worktree."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "benchmarks" / "bench_commits.py"
T_975 = {1: 12.7062, 2: 4.3027, 4: 2.7764, 5: 2.5706}  # Student's t, 0.975 quantile, by df


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_commits", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def _timings(**values):
    return {stage: values.get(stage) for stage in ("hidden_states_s", "fit_s", "steps_per_s")}


def test_rounds_alternate_abba(bench):
    order = bench.alternation(4)
    assert order == [
        ("current", "against"),
        ("against", "current"),
        ("current", "against"),
        ("against", "current"),
    ]
    firsts = [o[0] for o in order]
    assert firsts.count("current") == firsts.count("against")


def test_run_rounds_runs_warmup_then_counted_rounds_in_order(bench, tmp_path, monkeypatch):
    calls = []

    def fake_run_side(tree, run_dir, overrides):
        calls.append((tree.name, run_dir.name))
        assert "trainer.max_steps=5" in overrides and overrides[-1] == "model=tiny_bert"
        return {"fit_s": 1.0}

    monkeypatch.setattr(bench, "run_side", fake_run_side)
    args = bench.parse_args(["--against", "HEAD~1", "--rounds", "2", "--warmup", "1",
                             "--steps", "5", "model=tiny_bert"])  # fmt: skip
    runs = bench.run_rounds({"current": Path("cur"), "against": Path("old")}, args, tmp_path)
    assert calls == [
        ("cur", "current_0"), ("old", "against_0"),  # warm-up
        ("old", "against_1"), ("cur", "current_1"),  # round 0: ABBA continues
        ("cur", "current_2"), ("old", "against_2"),  # round 1
    ]  # fmt: skip
    assert [(r["round"], r["side"]) for r in runs] == [
        (-1, "current"), (-1, "against"), (0, "against"), (0, "current"),
        (1, "current"), (1, "against"),
    ]  # fmt: skip


def test_short_run_overrides(bench):
    overrides = bench.run_overrides(40, 500)
    expected = ["trainer.max_steps=40", "trainer.limit_train_batches=40",
                "trainer.limit_val_batches=1", "estimator.n_samples=500",
                "estimator.cache=false", "task.cache_tokens=false", "logger=none"]  # fmt: skip
    assert set(expected) <= set(overrides)
    with pytest.raises(ValueError, match="--steps must be >= 1"):
        bench.run_overrides(0, 500)


def test_stage_timings_from_the_log_and_the_record(bench):
    log = (
        "2026-12-07 10:00:01 INFO gelora.stages.profile: hidden states: 2,000 inputs x 7 layers "
        "in 11.4 s\n"
        "2026-12-07 10:00:04 INFO gelora.stages.profile: intrinsic dimension: 7 layers (and 5 "
        "resamples each) in 3.2 s\n"
    )
    record = {
        "timings": {"id_estimation_s": 15.1, "fit_s": 8.0, "test_s": 30.5, "total_s": 60.0},
        "optimizer_steps": 40,
    }
    found = bench.stage_timings(record, log, wall_s=71.23456)
    assert found == {
        "hidden_states_s": 11.4,
        "id_s": 3.2,
        "profile_s": 15.1,
        "fit_s": 8.0,
        "steps_per_s": 5.0,
        "test_s": 30.5,
        "total_s": 60.0,
        "wall_s": 71.235,
    }
    reused = bench.stage_timings({"timings": {"fit_s": 0.0}}, "ID profile reused", 1.0)
    assert reused["hidden_states_s"] is None and reused["steps_per_s"] is None


def test_paired_ratio_by_hand(bench):
    # rounds: 2.0/1.0 and 4.4/4.0; logs ln 2 and ln 1.1; geometric mean sqrt(2.2)
    ratio = bench.paired_ratio([2.0, 4.4], [1.0, 4.0])
    logs = [math.log(2.0), math.log(1.1)]
    mean, sd = sum(logs) / 2, abs(logs[0] - logs[1]) / math.sqrt(2)
    half = T_975[1] * sd / math.sqrt(2)
    assert ratio.ratio == pytest.approx(math.sqrt(2.2))
    assert ratio.sd_log == pytest.approx(sd)
    assert ratio.low == pytest.approx(math.exp(mean - half), rel=1e-4)
    assert ratio.high == pytest.approx(math.exp(mean + half), rel=1e-4)
    assert ratio.rounds == 2


def test_a_round_missing_a_stage_is_left_out(bench):
    ratio = bench.paired_ratio([1.1, None, 1.1, 1.1], [1.0, 1.0, 1.0, None])
    assert ratio.rounds == 2 and ratio.ratio == pytest.approx(1.1)
    assert (ratio.low, ratio.high) == (pytest.approx(1.1), pytest.approx(1.1))  # no spread
    assert ratio.rounds_for_5pct == 2
    one = bench.paired_ratio([1.2], [1.0])
    assert one.ratio == pytest.approx(1.2) and one.low is None
    assert bench.paired_ratio([None], [1.0]).ratio is None


def test_rounds_needed_for_five_percent(bench):
    # at a spread of 0.04 in log ratio: n = 5 gives 2.7764 * 0.04 / sqrt(5) = 0.0497 > log 1.05
    # = 0.0488; n = 6 gives 2.5706 * 0.04 / sqrt(6) = 0.0420
    assert T_975[4] * 0.04 / math.sqrt(5) > math.log(1.05) > T_975[5] * 0.04 / math.sqrt(6)
    assert bench.rounds_needed(0.04) == 6
    assert bench.rounds_needed(0.0) == 2
    assert bench.rounds_needed(10.0, cap=50) == 50


def test_verdicts_read_a_rate_the_other_way(bench):
    above = bench.Ratio(1.2, 1.1, 1.3, 6, 0.05, 6)
    assert bench.verdict(above, higher_is_faster=False) == "slower (20.0%)"
    assert bench.verdict(above, higher_is_faster=True) == "faster (20.0%)"
    across = bench.Ratio(1.02, 0.97, 1.07, 6, 0.05, 6)
    assert bench.verdict(across, higher_is_faster=False) == "no change resolved"
    assert bench.verdict(bench.Ratio(1.2, None, None, 1, None, None), False).startswith("no int")


def test_summary_pairs_rounds_and_skips_warmup(bench):
    runs = [
        {"round": -1, "side": "current", "timings": _timings(fit_s=100.0)},  # warm-up: ignored
        {"round": -1, "side": "against", "timings": _timings(fit_s=1.0)},
        {"round": 0, "side": "current", "timings": _timings(fit_s=2.2, steps_per_s=10.0)},
        {"round": 0, "side": "against", "timings": _timings(fit_s=2.0, steps_per_s=11.0)},
        {"round": 1, "side": "against", "timings": _timings(fit_s=4.0, steps_per_s=5.5)},
        {"round": 1, "side": "current", "timings": _timings(fit_s=4.4, steps_per_s=5.0)},
    ]
    summary = bench.summarise(runs)
    assert summary["fit_s"].ratio == pytest.approx(1.1) and summary["fit_s"].rounds == 2
    assert summary["steps_per_s"].ratio == pytest.approx(10 / 11)
    assert summary["hidden_states_s"].ratio is None
    meta = {"current": "abc1234", "against": "HEAD~3", "against_commit": "def5678", "rounds": 2,
            "warmup": 1, "steps": 5, "id_samples": 32, "overrides": ["debug=tiny"]}  # fmt: skip
    report = bench.report_markdown(summary, runs, meta)
    assert "| fit_s | 3.300 | 3.000 | 1.100 | [1.100, 1.100] | slower (10.0%) | 2 |" in report
    assert "| steps_per_s | 7.500 | 8.250 | 0.909 |" in report


def test_a_run_of_other_code_is_refused(bench):
    record = {"environment": {"gelora_commit": "abc123ff+dirty"}}
    bench.check_ran(record, Path("tree"), "abc123ff")  # its own commit, dirty or not
    bench.check_ran({}, Path("tree"), "abc123ff")  # an older record without the field
    with pytest.raises(RuntimeError, match=r"ran gelora at abc123ff\+dirty, not 0123abcd"):
        bench.check_ran(record, Path("tree"), "0123abcd")


def test_bad_arguments_are_refused(bench, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--against", "HEAD", "--rounds", "0"])
    assert "--rounds must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="is not a commit"):
        bench.main(["--against", "no-such-revision-anywhere"])


def test_the_earlier_commit_is_checked_out_and_removed(bench, tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

    git("init", "-q")
    (repo / "src").mkdir()
    for text in ("old", "new"):
        (repo / "file.txt").write_text(text)
        (repo / "src" / "module.py").write_text(f"WHICH = {text!r}\n")
        git("add", "file.txt", "src/module.py")
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", text)
    monkeypatch.setattr(bench, "REPO", repo)
    with bench.checked_out("HEAD~1", tmp_path / "work") as tree:
        assert (tree / "file.txt").read_text() == "old"
        assert list((tree / "src" / "__pycache__").glob("module.*.pyc"))  # compiled up front
        assert (repo / "file.txt").read_text() == "new"
    assert not tree.exists()
    listed = subprocess.run(["git", "worktree", "list", "--porcelain"], cwd=repo,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert json.dumps(str(tree)) not in json.dumps(listed) and listed.count("worktree ") == 1
