"""The leaderboard page (issue 46): generated from the committed records and equal to them, and
its verdicts in the house words on hand-made numbers (a win, a loss, a tie within the margin,
nothing detectable)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

from gelora.table.leaderboard import Effect, Entry, entries, headline, main, render
from gelora.table.paired import verdict

REPO = Path(__file__).resolve().parents[1]


def _page_script():
    spec = importlib.util.spec_from_file_location(
        "leaderboard_page", REPO / "experiments" / "leaderboard_page.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_page_is_the_generators_output_on_the_committed_records():
    script = _page_script()
    assert (REPO / script.PAGE).read_text() == script.page(REPO)


def test_the_first_arenas_rows_come_from_its_records():
    rows = {e.row: e for e in entries(REPO / "experiments/results/arena_cpu", REPO)}
    assert sorted(rows) == ["fisher", "gelora_budget", "gradient_spectrum"]
    fisher = rows["fisher"]
    assert (fisher.budget, fisher.tasks, fisher.seeds) == ("82,944", 4, 5)
    # paired.csv's fisher row: -0.0595 [-0.676, +0.557], MDE 0.806
    assert fisher.total.text() == "-0.06 [-0.68, +0.56], MDE 0.81"
    assert fisher.total.verdict.startswith("no detectable difference (MDE 0.81 over 4 tasks)")
    assert rows["gradient_spectrum"].placement.verdict == "equivalent within +/-0.5 over 4 tasks"
    assert fisher.source == "`experiments/results/arena_cpu/main` at `b4c816e`"
    assert rows["gelora_budget"].source.endswith("(commit not recorded)")


def _entry(total: Effect, placement: Effect | None = None) -> Entry:
    return Entry(
        "mine", "1,000", total, placement, 5, 3, "1 distinct plans over 5 batch draws", "x"
    )


def _effect(mean, low, high, mde, margin=None, equivalence=None) -> Effect:
    said = verdict(mean, (low, high), mde, margin, equivalence, over="5 tasks")
    return Effect(mean, low, high, mde, said)


def test_the_verdicts_in_the_house_words_on_hand_made_numbers():
    win = _effect(1.2, 0.4, 2.0, 0.9)
    loss = _effect(-0.8, -1.5, -0.1, 0.7)
    tie = _effect(0.05, -0.2, 0.3, 0.35, margin=0.5, equivalence=(-0.15, 0.25))
    nothing = _effect(0.1, -0.6, 0.8, 0.95, margin=0.5, equivalence=(-0.5, 0.7))
    assert win.verdict == "ahead by 1.20 [+0.40, +2.00] over 5 tasks"
    assert loss.verdict == "behind by 0.80 [-1.50, -0.10] over 5 tasks"
    assert tie.verdict == "equivalent within +/-0.5 over 5 tasks"
    assert nothing.verdict == (
        "no detectable difference (MDE 0.95 over 5 tasks); not shown equivalent within +/-0.5"
    )
    page = render([_entry(win, loss)], "lora", "T")
    assert "| `mine` | 1,000 | +1.20 [+0.40, +2.00], MDE 0.90: ahead by 1.20" in page
    assert (
        "-0.80 [-1.50, -0.10], MDE 0.70: behind by 0.80 [-1.50, -0.10] over 5 tasks | 5 | 3 |"
        in page
    )
    assert headline([_entry(win, loss)], "lora") == "A difference is detected for: `mine`."
    # nothing detected (a tie within the margin is not a detection): said plainly at the top
    quiet = render([_entry(tie, nothing)], "lora", "T")
    assert quiet.splitlines()[2].startswith("**Nothing is detectable**: no allocator is ahead")
    assert quiet.splitlines()[2].endswith(
        "Equivalence within the margin is shown only for `mine` against lora."
    )
    assert "not in the records" in render([_entry(nothing, None)], "lora", "T")


def test_the_command_writes_the_page_from_a_records_folder(tmp_path):
    fields = ["row", "task_level_mean", "task_level_ci95_low", "task_level_ci95_high",
              "task_level_mde", "verdict"]  # fmt: skip
    rows = {
        "paired.csv": [
            ["mine", "1.2", "0.4", "2.0", "0.9", "ahead by 1.20 [+0.40, +2.00] over 5 tasks"]
        ],
        "placement_mine.csv": [
            [
                "mine",
                "0.1",
                "-0.6",
                "0.8",
                "0.95",
                "no detectable difference (MDE 0.95 over 5 tasks)",
            ]
        ],
    }
    for name, values in rows.items():
        with (tmp_path / name).open("w", newline="") as handle:
            csv.writer(handle).writerows([fields, *values])
    with (tmp_path / "runs.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run_dir", "status", "method", "task", "seed", "adapter_params"])
        for task in ("a", "b"):
            for seed in (0, 1):
                writer.writerow(
                    [
                        f"sweep/method=mine,seed={seed},task={task}",
                        "completed",
                        "mine",
                        task,
                        seed,
                        1000,
                    ]
                )
    main([str(tmp_path), str(tmp_path / "page.md"), "--root", str(tmp_path), "--title", "Arena"])
    page = (tmp_path / "page.md").read_text()
    assert page.startswith("# Arena\n\nA difference is detected for: `mine`.")
    assert "| `mine` | 1,000 | +1.20 [+0.40, +2.00], MDE 0.90: ahead by 1.20" in page
    assert (
        "| 2 | 2 | not recorded (no plans over batch draws) | `sweep` (commit not recorded) |"
        in page
    )


@pytest.mark.parametrize("missing", ["paired.csv", "runs.csv"])
def test_a_folder_without_the_records_is_one_line_naming_the_file(tmp_path, capsys, missing):
    for name in {"paired.csv", "runs.csv"} - {missing}:
        (tmp_path / name).write_text("row\n")
    with pytest.raises(SystemExit) as stopped:
        main([str(tmp_path), str(tmp_path / "page.md")])
    assert stopped.value.code == 2
    assert (
        f"{tmp_path / missing}: not found (gelora-table --out writes it)" in capsys.readouterr().err
    )
    assert not (tmp_path / "page.md").exists()
