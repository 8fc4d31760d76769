"""experiments/plan_ablation.py's tables: distinct plans counted per rule, a person's reading of
the numbers kept when the file is rewritten, and the figure drawn from the saved JSON."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path

from gelora.plan.compare import PlanVariant

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "plan_ablation.py"


def _script():
    spec = importlib.util.spec_from_file_location("plan_ablation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def _cells(ablation) -> list:
    cells = []
    for pooling, seed, (rule, *_) in itertools.product(
        ablation.POOLINGS, ablation.SAMPLE_SEEDS, ablation.RULES
    ):
        # waterfill: one plan everywhere; every other rule: a plan per sample seed
        ranks = [2] * 6 if "waterfill" in rule else [1 + seed, 1, 1, 1, 1, 1]
        variant = PlanVariant(rule, [30.0] * 7, ranks, 100 * sum(ranks), [])
        cells.append(ablation.Cell("toy", pooling, seed, rule, variant, [1.0] * 7))
    return cells


def test_distinct_plans_are_counted_and_the_reading_survives_a_rewrite(tmp_path):
    ablation = _script()
    cells = _cells(ablation)
    ablation.write_outputs(["toy"], cells, tmp_path, seconds=60)
    text = (tmp_path / "plan_ablation.md").read_text()
    assert "| r2 waterfill k=0 | 1 |" in text and "| paper k=0 | 3 |" in text
    reading = "\n## What it shows\n\nA person's reading.\n"
    (tmp_path / "plan_ablation.md").write_text(text + reading)
    ablation.write_outputs(["toy"], cells, tmp_path, seconds=60)
    assert (tmp_path / "plan_ablation.md").read_text().endswith("A person's reading.\n")
    again = ablation.cells_from_json(tmp_path / "plan_ablation.json")
    assert again == cells
    assert ablation.plot_ablation(["toy"], again, tmp_path / "plan_ablation.png").stat().st_size
