"""gelora-table on a sweep directory: cells over seeds, failed and missing jobs shown as such."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from omegaconf import OmegaConf

from gelora.reporting.sweep_runs import load_runs
from gelora.reporting.table_cli import main
from gelora.reporting.tables import markdown_table


def _job(root: Path, method: str, task: str, seed: int, results: dict | None) -> None:
    job = root / f"method={method},seed={seed},task={task}"
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save({"task": {"name": task}, "seed": seed}, job / ".hydra" / "config.yaml")
    choices = {"hydra": {"runtime": {"choices": {"method": method, "rank_policy": "x"}}}}
    OmegaConf.save(choices, job / ".hydra" / "hydra.yaml")
    if results is not None:
        base = {"task": task, "seed": seed, "variant": method, "metric": "accuracy"}
        (job / "results.json").write_text(json.dumps(base | results))


def _completed(score: float, params: int = 1000) -> dict:
    return {
        "status": "completed",
        "metrics": {"test/accuracy": score},
        "trainable_adapter_params": params,
        "block_ranks": [1, 2],
        "intrinsic_dims": [5.0, 6.0, 7.5],
        "timings": {"total_s": 10.0},
    }


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
