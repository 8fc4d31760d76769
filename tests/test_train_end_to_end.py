"""The real app, run as a user runs it: the packaged model on a few hundred real examples."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SMOKE = [
    "task.max_train_samples=240",
    "task.max_eval_samples=120",
    "estimator.n_samples=200",
    "trainer.max_steps=8",
    "trainer.val_check_interval=4",
]


def gelora_train(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gelora.train", f"hydra.run.dir={run_dir}", *overrides],
        capture_output=True,
        text=True,
        timeout=600,
    )


def assert_not_successful(run_dir: Path) -> None:
    results = run_dir / "results.json"
    if results.exists():
        assert json.loads(results.read_text())["status"] != "completed"


@pytest.fixture(scope="module")
def gelora_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    run_dir = tmp_path_factory.mktemp("gelora")
    return run_dir, gelora_train(run_dir, *SMOKE, "logger=wandb")


def test_gelora_run_prints_the_profile_plan_and_score(gelora_run):
    _, proc = gelora_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Intrinsic dimension per hidden-state layer" in proc.stdout
    assert "Rank plan (gelora)" in proc.stdout
    assert "trainable:" in proc.stdout and "LoRA adapters" in proc.stdout
    assert "test/accuracy = " in proc.stdout


def test_gelora_run_writes_complete_results(gelora_run):
    run_dir, proc = gelora_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "completed"
    assert results["method"] == "gelora" and results["model"] == "minilm_l6"
    assert results["task"] == "rotten_tomatoes" and results["seed"] == 0
    assert len(results["intrinsic_dims"]) == 7  # embeddings + 6 blocks
    assert len(results["ranks"]) == 6 * 6
    per_block = [results["ranks"][f"bert.encoder.layer.{b}.attention.self.query"] for b in range(6)]
    assert results["block_ranks"] == per_block
    # 384 -> 384 maps (4 per block) cost 768 r; the two FFN maps 384 <-> 1536 cost 1920 r each.
    assert results["trainable_adapter_params"] == sum(r * (4 * 768 + 2 * 1920) for r in per_block)
    head = (384 * 384 + 384) + (384 * 2 + 2)  # pooler and classifier
    assert results["trainable_params"] == results["trainable_adapter_params"] + head
    assert 0.0 <= results["metrics"]["test/accuracy"] <= 1.0
    assert "val/accuracy_best" in results["metrics"]
    assert results["metric"] == "accuracy" and results["pooling"] == "mean"
    assert set(results["timings"]) >= {"id_estimation_s", "fit_s", "total_s"}
    assert results["config"]["estimator"]["n_samples"] == 200
    assert results["optimizer_steps"] == 8
    for figure in ("id_profile.png", "rank_plan.png"):
        assert (run_dir / figure).stat().st_size > 10_000


def test_wandb_leaves_a_syncable_offline_run(gelora_run):
    run_dir, proc = gelora_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    offline_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1
    assert list(offline_runs[0].glob("*.wandb"))


def test_uniform_lora_runs_the_same_way(tmp_path):
    proc = gelora_train(tmp_path, *SMOKE, "rank_policy=lora", "rank_policy.rank=2", "logger=csv")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["method"] == "lora" and set(results["ranks"].values()) == {2}
    assert results["trainable_adapter_params"] == 6 * 2 * (4 * 768 + 2 * 1920)
    assert list((tmp_path / "csv").rglob("metrics.csv"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=no_such_model"], "Could not find 'model/no_such_model'"),
        (["task=no_such_task"], "Could not find 'task/no_such_task'"),
        (["rank_policy.offset=-1"], "rank_policy: rank_policy.offset must be >= 0, got -1"),
        (["estimator.n_samples=2"], "estimator.n_samples must be an integer >= 3, got 2"),
        (["estimator.pooling=max"], "estimator.pooling must be one of mean, cls, token"),
    ],
)
def test_bad_input_gets_a_clear_error_and_no_success(tmp_path, overrides, message):
    proc = gelora_train(tmp_path, "logger=none", *overrides)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert_not_successful(tmp_path)
