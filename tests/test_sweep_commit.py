"""experiments/sweep_commit.py: completed jobs reach git as the sweep goes, nothing else does."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location(
        "sweep_commit", ROOT / "experiments/sweep_commit.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _job(sweep: Path, name: str, status: str) -> Path:
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (job / "checkpoints").mkdir()
    (job / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    record = {"status": status, "model": "m", "task": "t", "seed": 0, "config": {"seed": 0}}
    (job / "results.json").write_text(json.dumps(record))
    return job


def test_completed_jobs_are_committed_without_config_or_checkpoints(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    for key, value in (("user.email", "t@t"), ("user.name", "t")):
        subprocess.run(["git", "-C", str(tmp_path), "config", key, value], check=True)
    sweep = tmp_path / "results" / "grid"
    done = _job(sweep, "method=lora,seed=0", "completed")
    _job(sweep, "method=lora,seed=1", "failed")
    sweep_commit = _module()
    assert sweep_commit.commit_completed(sweep, "test sweep") == 1
    files = subprocess.run(
        ["git", "-C", str(tmp_path), "ls-files"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert files == [
        "results/grid/method=lora,seed=0/.hydra/config.yaml",
        "results/grid/method=lora,seed=0/results.json",
    ]
    assert json.loads((done / "results.json").read_text())["config"] is None
    assert sweep_commit.commit_completed(sweep, "test sweep") == 1  # nothing new: no commit
    log = subprocess.run(
        ["git", "-C", str(tmp_path), "log", "--oneline"], capture_output=True, text=True
    ).stdout.splitlines()
    assert len(log) == 1 and "1 jobs completed" in log[0]
