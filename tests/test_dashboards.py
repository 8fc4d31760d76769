"""What a sweep's wandb runs show on a dashboard (docs/dashboards.md), read from the offline runs'
own files as ``wandb sync`` uploads them: the ID profile as a line chart over its table, the
rank plan as a bar chart and as config keys, one group per sweep folder that a resume keeps, the
table row as the job type. One sweep serves every test: its job stopped by SIGTERM at step 2,
then resumed by the same command in the same folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gelora.sweep_jobs import job_folders
from tests.helpers import TINY, run_console_script
from tests.wandb_files import OfflineRun, offline_runs

SWEEP = [
    *TINY,
    "logger=wandb",
    "estimator.n_resamples=3",  # a spread per layer
    "estimator.cache=false",
    "task.cache_tokens=false",
    "+extra_callbacks.fault={_target_: tests.faults.SignalAtStep, step: 2, signal_name: SIGTERM}",
]


def sweep(sweep_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gelora.train", "-m", f"hydra.sweep.dir={sweep_dir}", *SWEEP],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def resumed(tmp_path_factory) -> tuple[Path, dict, list[OfflineRun]]:
    """The job's folder, its results.json and its two wandb runs (stopped, resumed)."""
    sweep_dir = tmp_path_factory.mktemp("sweeps") / "budget_curve" / "first_try"
    stopped = sweep(sweep_dir)
    assert stopped.returncode != 0, stopped.stderr[-2000:]
    done = sweep(sweep_dir)  # a later launch: the old group read `adhoc/<its launch time>`
    assert done.returncode == 0, done.stderr[-3000:]
    (job,) = job_folders(sweep_dir)
    record = json.loads((job / "results.json").read_text())
    assert record["status"] == "completed" and record["resumed_from"] is not None
    return job, record, offline_runs(job)


def test_a_resumed_sweep_stays_in_the_group_named_after_its_folder(resumed):
    # issue 44: with hydra.sweep.dir=... the group was adhoc/<launch time>, new at each launch
    _, _, runs = resumed
    assert len(runs) == 2
    assert [run.group for run in runs] == ["budget_curve/first_try"] * 2
    assert [run.job_type for run in runs] == ["gelora"] * 2  # the table row (method=...)


def test_the_id_profile_is_a_line_chart_over_a_table_of_layer_id_and_spread(resumed):
    _, record, runs = resumed
    run = runs[-1]
    table = run.table("plan/id_profile_table")
    assert table["columns"] == ["layer", "ID", "spread"]
    layers = record["id_profile"]["layers"]
    assert table["data"] == [[la["layer"], la["dimension"], la["std"]] for la in layers]
    assert all(la["std"] is not None for la in layers)  # three resamples: a spread each
    chart = run.config["_wandb"]["visualize"]["plan/id_profile"]["panel_config"]
    assert chart["panelDefId"] == "wandb/line/v0"
    assert chart["fieldSettings"]["x"] == "layer" and chart["fieldSettings"]["y"] == "ID"


def test_the_rank_plan_is_a_bar_chart_and_config_keys_to_filter_by(resumed):
    _, record, runs = resumed
    run = runs[-1]
    ranks = record["block_ranks"]
    table = run.table("plan/block_ranks_table")
    assert table["columns"] == ["block", "rank"]
    assert table["data"] == [[f"block_{i:02d}", r] for i, r in enumerate(ranks)]
    chart = run.config["_wandb"]["visualize"]["plan/block_ranks"]["panel_config"]
    assert chart["panelDefId"] == "wandb/bar/v0"
    assert chart["fieldSettings"] == {"label": "block", "value": "rank"}
    assert [run.config[f"rank_plan/block_{i:02d}"] for i in range(len(ranks))] == ranks
    assert run.config["rank_plan/plan"] == ",".join(map(str, ranks))
    assert run.config["rank_plan/total"] == sum(record["ranks"].values())  # every matrix
    assert run.config["seed"] == 0  # beside the whole resolved config


@pytest.fixture(scope="module")
def tabled(resumed) -> tuple[Path, OfflineRun]:
    """``gelora-table --wandb`` on the sweep: the sweep folder and the table's wandb run."""
    from gelora.table.cli import main as table_main

    job, _, _ = resumed
    sweep_dir = job.parent
    ran = run_console_script(
        lambda: table_main([str(sweep_dir), "--wandb"]), ["gelora-table", str(sweep_dir)]
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    (run,) = offline_runs(sweep_dir)
    assert f"wandb run: {run.folder}" in ran.stdout
    return sweep_dir, run


def test_gelora_table_logs_its_tables_and_figures_into_the_sweeps_group(tabled):
    sweep_dir, run = tabled
    assert (run.group, run.job_type) == ("budget_curve/first_try", "table")
    main = run.table("tables/table")
    assert main["columns"] == ["method", "adapter params", "rotten_tomatoes (accuracy)", "average"]
    table_md = (sweep_dir / "table.md").read_text()
    assert f"| {' | '.join(str(c) for c in main['data'][0])} |" in table_md  # gelora's row
    runs = run.table("csv/runs")
    assert runs["columns"][:3] == ["run_dir", "status", "method"]
    assert [row[1:3] for row in runs["data"]] == [["completed", "gelora"]]
    assert {"figures/id_profiles", "figures/rank_plans"} <= set(run.summary)
    assert (run.folder / "files" / "table.md").read_text() == table_md


def test_markdown_tables_are_read_with_their_headings_and_numbers():
    from gelora.table.wandb_log import markdown_tables

    text = (
        "| method | score |\n|---|---:|\n| lora | 78.5 |\n\ncaption\n\n## Paired differences\n\n"
        "| method | pairs |\n|---|---:|\n| gelora | 20 |\n| eva | n/a |\n"
    )
    tables = markdown_tables(text)
    assert [(t.heading, t.columns, t.rows) for t in tables] == [
        ("table", ["method", "score"], [["lora", 78.5]]),
        ("Paired differences", ["method", "pairs"], [["gelora", 20], ["eva", "n/a"]]),
    ]


def test_gelora_sync_finds_every_run_of_the_sweep(tabled, capfd):
    from gelora.sync.cli import main as sync_main

    sweep_dir, table_run = tabled
    (job,) = job_folders(sweep_dir)
    with pytest.raises(SystemExit) as stop:
        sync_main([str(sweep_dir), "--dry-run"])
    assert stop.value.code == 0
    said = capfd.readouterr()
    assert "2 offline wandb run(s)" not in said.out and "3 offline wandb run(s)" in said.out
    would = [line for line in said.err.splitlines() if line.strip().endswith(".wandb")]
    assert len(would) == 3 and "Would sync 3 run(s)" in said.err
    expected = [*sorted((job / "wandb").glob("offline-run-*")), table_run.folder]
    assert sorted(Path(line.split()[-1]).parent for line in would) == sorted(expected)


def test_the_runs_of_nested_job_folders_are_found_where_a_glob_misses_them(tmp_path):
    # issue 44: `wandb sync <sweep>/*/*/wandb/offline-run-*` found 2 of 4 jobs' runs
    from gelora.sweep_jobs import job_dirname
    from gelora.sync.cli import sweep_offline_runs

    long = "lora.target_modules=[" + ",".join(f"module_{i:03d}" for i in range(30)) + "]"
    jobs = [
        job_dirname("method=lora,seed=0"),
        job_dirname(f"method=lora,seed=1,{long}"),  # continues in a subfolder
        job_dirname(f"experiment=x,{long},method=gelora_budget,seed=1,task.max_length=64"),
    ]
    assert [job.count("/") for job in jobs] == [0, 1, 2]
    made = []
    for job in [*jobs, f"{jobs[0]}/superseded/2026-01-01_00-00-00"]:
        (tmp_path / job / ".hydra").mkdir(parents=True)
        made.append(tmp_path / job / "wandb" / "offline-run-20260101_000000-abc")
        made[-1].mkdir(parents=True)
    (tmp_path / "wandb" / "offline-run-20260102_000000-tab").mkdir(parents=True)
    found = sweep_offline_runs(tmp_path)
    assert found == [*sorted(made[:3]), tmp_path / "wandb" / "offline-run-20260102_000000-tab"]
    assert len(list(tmp_path.glob("*/wandb/offline-run-*"))) == 1  # the plain glob: one job


def test_the_group_is_the_sweep_folders_last_two_names_wherever_it_is_given_from(tmp_path):
    from hydra.types import RunMode

    from gelora.sweep_jobs import WANDB_GROUP_CHARS, wandb_group

    sweep = "multirun_outputs/table_cpu/2026-12-07_10-00-00"
    assert wandb_group(RunMode.MULTIRUN, sweep, "table_cpu") == "table_cpu/2026-12-07_10-00-00"
    absolute = str(Path.cwd() / sweep)
    assert wandb_group(RunMode.MULTIRUN, absolute, "x") == "table_cpu/2026-12-07_10-00-00"
    assert wandb_group(RunMode.MULTIRUN, sweep + "/", "x") == "table_cpu/2026-12-07_10-00-00"
    assert wandb_group(RunMode.RUN, sweep, "table_cpu") == "table_cpu"  # a single run
    long = wandb_group(RunMode.MULTIRUN, "a/" + "b" * 200, "x")
    assert len(long) == WANDB_GROUP_CHARS and long.endswith("b" * 100)
    assert long != wandb_group(RunMode.MULTIRUN, "c/" + "b" * 200, "x")


@pytest.mark.parametrize(("user_mode", "offline"), [(None, True), ("online", False)])
def test_a_wandb_mode_the_user_set_wins_over_offline(monkeypatch, tmp_path, user_mode, offline):
    # Lightning's offline=True wrote WANDB_MODE=dryrun over the user's WANDB_MODE=online
    from gelora.training import loggers

    monkeypatch.setattr(loggers, "USER_MODE", user_mode)
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path))  # the logger sets it: put back after
    logger = loggers.WandbLogger(project="p", offline=True, save_dir=str(tmp_path))
    assert logger._offline is offline


@pytest.mark.parametrize("other", [["--select-lr", "lr.yaml"], ["--size-for-mde", "1"]])
def test_wandb_beside_an_option_that_writes_no_table_is_refused_in_one_line(other, capsys):
    from gelora.table.cli import main as table_main

    with pytest.raises(SystemExit) as stop:
        table_main(["no_such_sweep", "--wandb", *other])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        "gelora-table: error: --wandb logs the table's files; --select-lr and --size-for-mde "
        "write no table\n"
    )


def test_gelora_table_under_wandb_mode_disabled_logs_nothing(tabled, tmp_path, monkeypatch):
    from gelora.table.cli import main as table_main

    sweep_dir, _ = tabled
    monkeypatch.setenv("WANDB_MODE", "disabled")
    out = tmp_path / "table"
    ran = run_console_script(
        lambda: table_main([str(sweep_dir), "--wandb", "--no-plots", "--out", str(out)]),
        ["gelora-table"],
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.splitlines()[-1] == "wandb: disabled (WANDB_MODE); nothing logged"
    assert not (out / "wandb").exists()


def test_the_paired_differences_and_every_csv_and_figure_are_in_the_payload(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gelora.table.wandb_log import table_payload

    (tmp_path / "table.md").write_text(
        "| method | sst2 (accuracy) | average |\n|---|---:|---:|\n| lora | 91.2 n=3 | 91.2 |\n\n"
        "## Paired differences versus lora\n\n| method | pairs | mean difference |\n|---|---:|---:|"
        "\n| gelora | 3 | -0.40 |\n\nPer task:\n\n"
        "| method | sst2 |\n|---|---:|\n| gelora | -0.40 |\n"
    )
    (tmp_path / "paired.csv").write_text("method,pairs,mean\ngelora,3,-0.4\n")
    plt.figure().savefig(tmp_path / "paired_differences.png")
    payload = table_payload(tmp_path, figures=True)
    assert sorted(payload) == [
        "csv/paired",
        "figures/paired_differences",
        "tables/paired_differences_versus_lora",
        "tables/paired_differences_versus_lora_2",
        "tables/table",
    ]
    paired = payload["tables/paired_differences_versus_lora"]
    assert paired.columns == ["method", "pairs", "mean difference"]
    assert paired.data == [["gelora", 3, -0.4]]
    assert payload["tables/paired_differences_versus_lora_2"].data == [["gelora", -0.4]]
    assert payload["csv/paired"].data == [["gelora", 3, -0.4]]
    assert "figures/paired_differences" not in table_payload(tmp_path, figures=False)


def test_a_csv_column_of_numbers_words_and_empty_cells_is_logged(tmp_path):
    # the README's demo sweep: a paired.csv whose statistics are numbers for one row and "nan" or
    # empty for another; wandb fixes a column's type from its first row unless mixed types are
    # allowed, and refused the table (gelora-table --wandb exited 1)
    from gelora.table.wandb_log import csv_table, table_payload

    (tmp_path / "paired.csv").write_text("method,sd,verdict\ngelora,0.4,ahead\nrandom,,2\n")
    rows = [["gelora", 0.4, "ahead"], ["random", None, 2]]
    assert csv_table(tmp_path / "paired.csv")[1] == rows
    assert table_payload(tmp_path, figures=False)["csv/paired"].data == rows
