"""Sizing a sweep from its first runs (issues 27 and 42): ``pairs_for_mde`` inverts the MDE, and
``gelora-table --size-for-mde`` prints the task-level spreads and the tasks a goal needs, never a
mean, and writes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from gelora.table.cli import main
from gelora.table.paired import minimum_detectable_effect, pairs_for_mde
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


def _row(out: str, name: str) -> list[str]:
    row = next(line for line in out.splitlines() if line.startswith(f"| {name} "))
    return [c.strip() for c in row.strip("|").split("|")]


def test_size_for_mde_prints_task_level_spreads_and_tasks_not_the_effect(tmp_path, capsys):
    # Hand-made differences (points): task x: 1, 3 (mean 2); y: 4, 6 (mean 5); z: 7, 9 (mean 8).
    # Task means 2, 5, 8: SD 3. Within each task the pairs are mean +/- 1: pooled SD
    # sqrt((2 + 2 + 2) / 3) = 1.414. Between: sqrt(3^2 - 1.414^2 / 2) = sqrt(8) = 2.83.
    # Task-level MDE now: (t_.975,2 + t_.80,2) x 3 / sqrt(3) = 3.0965 x 3 = 9.29.
    for task, differences in {"x": (1, 3), "y": (4, 6), "z": (7, 9)}.items():
        for seed, d in enumerate(differences):
            _job(tmp_path, "lora", task, seed, _completed(0.5))
            _job(tmp_path, "gelora", task, seed, _completed(0.5 + d / 100))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    main([str(tmp_path), "--size-for-mde", "4"])
    out = capsys.readouterr().out
    cells = _row(out, "gelora")
    assert cells[:4] == ["gelora", "3", "6", "2.0"]
    assert cells[4:8] == ["3.00", "1.41", "2.83", "9.29"]
    # tasks needed for an MDE of 4 at SD 3 and at SD 2.83: pairs_for_mde's formula over tasks
    assert cells[8:] == [str(pairs_for_mde(3.0, 4)), str(pairs_for_mde(np.sqrt(8), 4))]
    assert int(cells[8]) >= int(cells[9]) > 3
    assert "5.00" not in out and "+5" not in out  # the mean difference is never printed
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no table, CSV or figure


def test_size_for_mde_with_one_task_sizes_its_seeds(tmp_path, capsys):
    for seed, d in enumerate((1, 2, 3)):
        _job(tmp_path, "lora", "sst", seed, _completed(0.5))
        _job(tmp_path, "gelora", "sst", seed, _completed(0.5 + d / 100))
    main([str(tmp_path), "--size-for-mde", "1"])
    cells = _row(capsys.readouterr().out, "gelora")
    # SD 1 over 3 seeds: MDE 3.10 (as above); an MDE of 1 needs pairs_for_mde(1, 1) seeds
    assert cells[5] == "1.00" and cells[7] == "3.10 (seeds)"
    assert cells[8] == f"{pairs_for_mde(1.0, 1.0)} seeds of 1 task"


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
