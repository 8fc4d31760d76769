"""How the tests run gelora: composed in process, or as a user runs it on the command line.

One place for the config folder, the quick sizes (``conf/debug/``) and the ways to run, so no
test module imports another.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import gelora.config  # noqa: F401  (registers the schemas the configs are composed with)

CONF = Path(__file__).resolve().parents[1] / "conf"
TINY = ["model=tiny_bert", "debug=tiny"]  # a random 2-block BERT, 3 steps: seconds
SMOKE = ["debug=smoke"]  # the real default model, 8 steps on 240 examples
METRIC_RANGE = {"pearson": (-1, 1), "spearman": (-1, 1), "matthews": (-1, 1)}


def compose_train(*overrides: str, hydra_config: bool = False) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra_config)


def run_in_process(out_dir: Path, *overrides: str) -> dict:
    """``gelora.pipeline.run`` on the composed config: results.json's content."""
    from gelora.pipeline import run

    return run(compose_train(*overrides, f"paths.output_dir={out_dir}"))


def gelora_train(run_dir: Path, *overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``gelora-train`` as a user runs it, in a new process."""
    return subprocess.run(
        [sys.executable, "-m", "gelora.train", f"hydra.run.dir={run_dir}", *overrides],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def gelora_sweep(
    root: Path, *overrides: str, sweep_id: str = "test"
) -> subprocess.CompletedProcess:
    """``gelora-train -m`` in ``root`` (where ``multirun_outputs/`` lands)."""
    return subprocess.run(
        [sys.executable, "-m", "gelora.train", "-m", f"sweep_id={sweep_id}", *overrides],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=root,
    )


def assert_not_successful(run_dir: Path) -> None:
    results = run_dir / "results.json"
    if results.exists():
        assert json.loads(results.read_text())["status"] != "completed"


def assert_scored(results: dict, metrics: list[str], prefixes: tuple[str, ...] = ("test",)):
    assert results["status"] == "completed"
    assert results["metric"] == metrics[0] and results["metric_names"] == metrics
    for prefix in prefixes:
        for name in metrics:
            value = results["metrics"][f"{prefix}/{name}"]
            low, high = METRIC_RANGE.get(name, (0, 1))
            assert math.isfinite(value) and low <= value <= high, (prefix, name, value)
    assert f"val/{metrics[0]}_best" in results["metrics"]
