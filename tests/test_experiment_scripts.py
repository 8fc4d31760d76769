"""experiments/confirm_paired.py (a pre-registered one-task confirmation, issue 42) and
experiments/budget_check.py's table, on hand-checked cases."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.test_table import _completed, _job

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def test_one_sided_test_by_hand():
    confirm = _script("confirm_paired")
    # differences 1, 2, 3: mean 2, SD 1, t = 2 / (1 / sqrt(3)) = 3.464 with 2 df; the one-sided p
    # of t_2 > 3.464 is 0.0371 (from the t_2 distribution: 1/2 - t / (2 sqrt(t^2 + 2)))
    result = confirm.one_sided_test([1.0, 2.0, 3.0])
    assert result.mean == pytest.approx(2.0)
    assert result.p_value == pytest.approx(0.5 - 3.4641 / (2 * (3.4641**2 + 2) ** 0.5), abs=1e-4)
    assert result.confirmed and result.wins_ties_losses == (3, 0, 0)
    # 2 +/- t_.975,2 / sqrt(3) = 2 +/- 2.4841
    assert result.interval == pytest.approx((2 - 2.4841, 2 + 2.4841), abs=1e-4)
    assert not confirm.one_sided_test([1.0, -2.0, 0.5, 0.2]).confirmed
    with pytest.raises(ValueError, match="at least 3 pairs"):
        confirm.one_sided_test([1.0, 2.0])


def test_confirmation_reads_a_sweep_and_lists_what_it_could_not_pair(tmp_path, capsys):
    confirm = _script("confirm_paired")
    for seed, d in enumerate((1, 2, 3)):
        _job(tmp_path, "lora", "rt", seed, _completed(0.5))
        _job(tmp_path, "waterfill", "rt", seed, _completed(0.5 + d / 100))
    _job(tmp_path, "waterfill", "rt", 3, {"status": "failed", "error": "boom"})
    _job(tmp_path, "lora", "other", 0, _completed(0.9))  # another task: not read
    out = tmp_path / "confirmation.md"
    confirm.main([str(tmp_path), "--method", "waterfill", "--versus", "lora", "--task", "rt",
                  "--out", str(out)])  # fmt: skip
    text = capsys.readouterr().out
    assert "waterfill minus lora on rt, 3 seeds: mean +2.00 points" in text
    assert "**confirmed**" in text and "not completed: waterfill seed 3 (failed)" in text
    assert out.read_text() == text


def _plan_cell(check, task, pooling, seed, ranks, moved, rank=2, score="id"):
    return check.PlanCell(task, seed, rank, score, [1.0, 2.0], ranks, moved, 4.0, 100, pooling)


def _check_args(check, tmp_path, **changes):
    parser_args = check.argparse.Namespace(
        tasks=["a", "b"], ranks=[2], scores=["id"], seeds=[0, 1], poolings=["mean"],
        model="minilm_l6", setup="setup/table_cpu2", resume=False, out=tmp_path,
    )  # fmt: skip
    for key, value in changes.items():
        setattr(parser_args, key, value)
    return parser_args


def test_budget_check_page_by_hand(tmp_path):
    check = _script("budget_check")
    args = _check_args(check, tmp_path, poolings=["mean", "cls"])
    cells = [
        _plan_cell(check, "a", "mean", 0, [3, 1], 1.0),
        _plan_cell(check, "a", "mean", 1, [2, 2], 0.0),
        _plan_cell(check, "a", "cls", 0, [1, 3], 1.0),
        _plan_cell(check, "a", "cls", 1, [1, 3], 1.0),
    ]
    text = check.markdown(cells, args, 60.0)
    # only task a has plans: the page says so, and b has no column
    assert "1 of 2 tasks so far" in text and "| b |" not in text
    # seed 0, mean pooling: 1 unit moved; over seeds 0-1: 0-1 units, two distinct plans
    assert "| 2 (4 units) | id | 1 | 1 |" in text
    assert "| 2 | id | 0-1 (2 plans) |" in text
    # cls pooling: the same plan at both seeds
    assert "## Over the sample seeds, cls pooling" in text and "| 2 | id | 1 (1 plans) |" in text
    assert "| cls | 1 | 1.0 2.0 | 1,3 |" in text


def test_budget_check_never_replaces_an_earlier_check(tmp_path):
    check = _script("budget_check")
    (tmp_path / "budget_check.json").write_text("[]\n")
    with pytest.raises(SystemExit, match="exists; pass --resume"):
        check.previous_cells(_check_args(check, tmp_path))
    (tmp_path / "budget_check.settings.json").write_text(
        '{"model": "mpnet_base", "setup": "setup/table_cpu2"}\n'
    )
    with pytest.raises(SystemExit, match=r"was written with .*mpnet_base.*choose another --out"):
        check.previous_cells(_check_args(check, tmp_path, resume=True))
    cell = _plan_cell(check, "a", "mean", 0, [3, 1], 1.0)
    (tmp_path / "budget_check.json").write_text(check.json.dumps([check.asdict(cell)]) + "\n")
    resumed = check.previous_cells(_check_args(check, tmp_path, resume=True, model="mpnet_base"))
    assert resumed == [cell]


def _depth_cell(task, seed, moved, uniform_units, ranks, rank=24, score="id"):
    return {"task": task, "sample_seed": seed, "rank": rank, "score": score,
            "units_moved": moved, "uniform_units": uniform_units, "block_ranks": ranks}  # fmt: skip


def test_depth_comparison_by_hand():
    depth = _script("depth_compare")
    # 6 blocks x rank 24 = 144 units; 12 blocks x 24 = 288
    six = [_depth_cell("a", 0, 7.2, 144, [1]), _depth_cell("a", 1, 14.4, 144, [2]),
           _depth_cell("b", 0, 0.0, 144, [1]), _depth_cell("b", 1, 0.0, 144, [1])]  # fmt: skip
    twelve = [_depth_cell("a", 0, 28.8, 288, [1]), _depth_cell("a", 1, 28.8, 288, [1]),
              _depth_cell("b", 0, 14.4, 288, [3]), _depth_cell("b", 1, 0.0, 288, [4])]  # fmt: skip
    # shares: six a 5%, 10% (mean 7.5), b 0; twelve a 10% (mean 10), b 5%, 0 (mean 2.5)
    shares = depth.shares(six)
    assert shares[24, "id", "a"] == depth.Share(5.0, 7.5, 2, 2)
    difference = depth.paired_difference([7.5, 0.0], [10.0, 2.5])
    # differences 2.5, 2.5: mean 2.5, SD 0, so the interval is the point
    assert difference.mean == pytest.approx(2.5) and difference.second_larger == 2
    assert difference.interval == pytest.approx((2.5, 2.5))
    text = depth.page(six, twelve, ("six", "twelve"))
    assert "| a | 5.0 / 7.5 (2 of 2) | 10.0 / 10.0 (1 of 2) |" in text
    assert "Over 2 tasks: +2.5 points [+2.5, +2.5]; twelve moves more on 2 of 2." in text
