"""Sizing a sweep from its first seeds (issue 27): ``pairs_for_mde`` inverts the MDE, and
``gelora-table --size-for-mde`` prints spreads and pair counts, never a mean, and writes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from gelora.reporting.paired import minimum_detectable_effect, pairs_for_mde
from gelora.reporting.table_cli import main
from tests.test_table import _completed, _job


def _mde_at(sd: float, n: int) -> float:
    """The MDE of n pairs whose sample sd is exactly ``sd``."""
    values = np.array([sd, -sd] * (n // 2) + [0.0] * (n % 2))
    values *= sd / np.std(values, ddof=1)
    return minimum_detectable_effect(values.tolist())


@pytest.mark.parametrize("sd,goal", [(1.0, 0.4), (0.9, 0.4), (2.5, 1.0), (0.3, 0.4)])
def test_pairs_for_mde_is_the_fewest_pairs_that_reach_the_goal(sd, goal):
    n = pairs_for_mde(sd, goal)
    assert n is not None and n >= 2
    assert _mde_at(sd, n) <= goal + 1e-12
    if n > 2:
        assert _mde_at(sd, n - 1) > goal


def test_pairs_for_mde_by_hand_and_its_edges():
    # sd 1, goal 0.4: at 52 pairs (t_.975,51 + t_.80,51) / sqrt(52) = 2.8565 / 7.2111 = 0.396;
    # at 51, 2.8576 / 7.1414 = 0.4001.
    assert pairs_for_mde(1.0, 0.4) == 52
    assert pairs_for_mde(0.0, 0.4) == 2  # no spread: the fewest pairs that have one
    assert pairs_for_mde(1000.0, 0.001) is None  # beyond 100,000 pairs
    for bad_goal in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="MDE goal"):
            pairs_for_mde(1.0, bad_goal)
    with pytest.raises(ValueError, match="spread"):
        pairs_for_mde(float("inf"), 0.4)


def _pilot(tmp_path):
    rng = np.random.default_rng(0)
    for task in ("sst", "news", "nli"):
        for seed in range(3):
            base = 0.7 + 0.01 * seed
            _job(tmp_path, "lora", task, seed, _completed(base))
            _job(tmp_path, "gelora", task, seed, _completed(base + 0.0123 + rng.normal(0, 0.01)))
    return tmp_path


def test_size_for_mde_prints_spreads_and_pairs_not_the_effect(tmp_path, capsys):
    sweep = _pilot(tmp_path)
    before = sorted(p.name for p in sweep.rglob("*"))
    main([str(sweep), "--size-for-mde", "0.4"])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| gelora "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:3] == ["gelora", "3", "9"]
    from gelora.reporting.paired_tables import paired_section
    from gelora.reporting.sweep_runs import load_runs

    (comparison,) = paired_section(load_runs(sweep), "lora").overall
    sd = float(np.std(comparison.differences, ddof=1))
    needed = pairs_for_mde(sd, 0.4)
    assert cells[3:] == [f"{sd:.2f}", f"{comparison.mde:.2f}", str(needed), str(-(-needed // 3))]
    mean = f"{comparison.mean_difference:.2f}"
    assert mean not in out.replace(f"{sd:.2f}", "").replace(f"{comparison.mde:.2f}", "")
    assert sorted(p.name for p in sweep.rglob("*")) == before  # no table, CSV or figure


def test_size_for_mde_refuses_a_bad_goal_or_a_missing_reference_in_one_line(tmp_path, capsys):
    sweep = _pilot(tmp_path)
    for argv, says in [
        (["--size-for-mde", "0"], "--size-for-mde must be a positive number"),
        (["--size-for-mde", "0.4", "--versus", "adalora"], "--versus adalora: no such row"),
    ]:
        with pytest.raises(SystemExit) as stop:
            main([str(sweep), *argv])
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err
