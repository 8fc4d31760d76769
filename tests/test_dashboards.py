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
from tests.helpers import TINY
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
    assert run.config["rank_plan/total"] == sum(ranks)
    assert run.config["seed"] == 0  # beside the whole resolved config
