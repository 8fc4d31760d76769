"""experiments/reuse_table_cpu_runs.py: a later sweep's job takes an earlier run only when it is
the same method, task, seed, rate, budget, scaling and test rows, and never over a result."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location(
        "reuse_table_cpu_runs", ROOT / "experiments/reuse_table_cpu_runs.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _record(job: Path, method: str, task: str, seed: int, lr: float, score: float, **extra):
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text(f"seed: {seed}\ntask:\n  name: {task}\n")
    (job / "checkpoints").mkdir()
    record = {
        "status": "completed",
        "model": "minilm_l6",
        "task": task,
        "seed": seed,
        "variant": method,
        "method": method,
        "budget": {"rank": 2, "params": None},
        "scaling": {"rule": "constant", "scale": 2.0, "text": "alpha/r = 2"},
        "learning_rate": lr,
        "eval_rows": {"test": {"rows": 1000, "sha256": f"rows-of-{task}"}},
        "metrics": {"test/accuracy": score},
        **extra,
    }
    (job / "results.json").write_text(json.dumps(record))


@pytest.fixture
def table(tmp_path):
    root = tmp_path / "table_cpu"
    grid = root / "lr_grid"
    for lr, score in ((0.0003, 0.70), (0.001, 0.80), (0.003, 0.75)):
        _record(grid / f"method=lora,optimizer.lr={lr},seed=0,task=rt", "lora", "rt", 0, lr, score)
    _record(
        grid / "method=head_only,optimizer.lr=1e-2,seed=0,task=rt", "head_only", "rt", 0, 0.01, 0.6
    )
    choice = tmp_path / "lr_choice.yaml"
    choice.write_text("lr_choice:\n  lora:\n    rt: 0.001\n  head_only:\n    rt: 0.01\n")
    return root, choice


def test_step_two_takes_the_grid_run_at_the_chosen_rate_and_marks_it(table):
    root, choice = table
    reuse = _module()
    reuse.main([str(root), "--lr-choice", str(choice)])
    target = root / "main" / "method=lora,seed=0,task=rt"
    record = json.loads((target / "results.json").read_text())
    assert record["learning_rate"] == 0.001 and record["metrics"]["test/accuracy"] == 0.80
    assert (
        (target / "REUSED_FROM")
        .read_text()
        .startswith("lr_grid/method=lora,optimizer.lr=0.001,seed=0,task=rt:")
    )
    assert [o.strip() for o in (target / ".hydra/overrides.yaml").read_text().splitlines()] == [
        "- method=lora",
        "- seed=0",
        "- task=rt",
    ]
    head = json.loads((root / "main/method=head_only,seed=0,task=rt/results.json").read_text())
    assert head["learning_rate"] == 0.01  # found by its record's rate, whatever the folder says
    assert not (target / "checkpoints").exists()


def test_the_budget_curve_takes_step_twos_rank_two_runs_seed_for_seed(table):
    root, choice = table
    reuse = _module()
    for seed in (1, 2):
        job = root / "main" / f"method=lora,seed={seed},task=rotten_tomatoes"
        _record(job, "lora", "rotten_tomatoes", seed, 0.001, 0.7 + seed / 100)
    reuse.main([str(root), "--lr-choice", str(choice)])
    copied = sorted(p.name for p in (root / "budget").iterdir())
    assert copied == [
        "budget.rank=2,method=lora,seed=1,task=rotten_tomatoes",
        "budget.rank=2,method=lora,seed=2,task=rotten_tomatoes",
    ]
    seed2 = root / "budget" / copied[1] / "results.json"
    assert json.loads(seed2.read_text())["metrics"]["test/accuracy"] == 0.72


def test_a_table_without_a_budget_curve_gets_no_budget_sweep(tmp_path, table):
    _, choice = table
    root = tmp_path / "table_cpu2"  # conf/experiment has no table_cpu2_budget.yaml
    _record(
        root / "lr_grid/method=lora,optimizer.lr=0.001,seed=0,task=rotten_tomatoes",
        *("lora", "rotten_tomatoes", 0, 0.001, 0.8),
    )
    choice.write_text("lr_choice:\n  lora:\n    rotten_tomatoes: 0.001\n")
    _module().main([str(root), "--lr-choice", str(choice)])
    assert (root / "main/method=lora,seed=0,task=rotten_tomatoes/REUSED_FROM").is_file()
    assert not (root / "budget").exists()  # step 2's run is not copied into a curve never run


def test_a_completed_job_is_never_overwritten(table):
    root, choice = table
    reuse = _module()
    target = root / "main" / "method=lora,seed=0,task=rt"
    _record(target, "lora", "rt", 0, 0.001, 0.81)  # the sweep ran it itself
    reuse.main([str(root), "--lr-choice", str(choice)])
    assert json.loads((target / "results.json").read_text())["metrics"]["test/accuracy"] == 0.81
    assert not (target / "REUSED_FROM").exists()


def test_the_papers_scaling_row_is_reused_beside_rows_of_the_shared_rule(table):
    root, choice = table
    paper = root / "lr_grid" / "method=gelora_paper,optimizer.lr=0.001,seed=0,task=rt"
    _record(paper, "gelora_paper", "rt", 0, 0.001, 0.79, budget={"rank": None, "params": None})
    record = json.loads((paper / "results.json").read_text())
    record["scaling"] = {"rule": "constant", "scale": 32.0, "text": "alpha/r = 32"}
    (paper / "results.json").write_text(json.dumps(record))
    choice.write_text(choice.read_text() + "  gelora_paper:\n    rt: 0.001\n")
    _module().main([str(root), "--lr-choice", str(choice)])  # lora's copy lands first
    target = root / "main" / "method=gelora_paper,seed=0,task=rt" / "results.json"
    assert json.loads(target.read_text())["scaling"]["text"] == "alpha/r = 32"


def test_a_run_on_other_test_rows_or_another_scaling_is_refused(table):
    root, choice = table
    reuse = _module()
    _record(root / "main/method=lora,seed=1,task=rt", "lora", "rt", 1, 0.001, 0.8)
    sibling = root / "main/method=lora,seed=1,task=rt/results.json"
    record = json.loads(sibling.read_text())
    record["eval_rows"]["test"]["sha256"] = "other rows"
    sibling.write_text(json.dumps(record))
    with pytest.raises(SystemExit, match="other test rows"):
        reuse.main([str(root), "--lr-choice", str(choice)])
    assert not (root / "main/method=head_only,seed=0,task=rt").exists()  # nothing half-done
    record["eval_rows"]["test"]["sha256"] = "rows-of-rt"
    record["scaling"]["text"] = "alpha/r = 32"  # the sweep's lora runs at another rule
    sibling.write_text(json.dumps(record))
    with pytest.raises(SystemExit, match="scaling 'alpha/r = 2' differs from the sweep's lora"):
        reuse.main([str(root), "--lr-choice", str(choice)])


def test_commit_adds_only_the_record_marker_and_hydra_files(table, monkeypatch):
    root, choice = table
    git_root = root.parent
    subprocess.run(["git", "init", "-q", str(git_root)], check=True)
    for key, value in (("user.email", "t@t"), ("user.name", "t")):
        subprocess.run(["git", "-C", str(git_root), "config", key, value], check=True)
    monkeypatch.chdir(git_root)
    _module().main(["table_cpu", "--lr-choice", str(choice), "--commit"])
    files = subprocess.run(
        ["git", "ls-files"], capture_output=True, text=True, check=True
    ).stdout.split()
    lora = "table_cpu/main/method=lora,seed=0,task=rt"
    assert f"{lora}/results.json" in files and f"{lora}/REUSED_FROM" in files
    assert f"{lora}/.hydra/overrides.yaml" in files
    assert all(f.startswith("table_cpu/main/") for f in files)
    assert len(files) == 2 * 4  # two jobs: record, marker, config.yaml, overrides.yaml


def test_a_table_of_shared_rates_reuses_the_grid_run_at_the_shared_rate(tmp_path):
    # table_cpu3 (issue 42): its rows train at lr_choice.shared.<task> (lr_source), at rank 24;
    # each row's own choice, also in the file, is not the rate step 2 trains at
    reuse = _module()
    root = tmp_path / "table_cpu3"
    for method in ("lora", "gelora_budget_id"):
        for lr in (0.0003, 0.001):
            job = root / "lr_grid" / f"method={method},optimizer.lr={lr},seed=0,task=rt"
            _record(job, method, "rt", 0, lr, 0.8, budget={"rank": 24, "params": None})
    choice = tmp_path / "lr_choice.yaml"
    choice.write_text(
        "lr_choice:\n  lora:\n    rt: 0.0003\n  gelora_budget_id:\n    rt: 0.001\n"
        "  shared:\n    rt: 0.001\n"
    )
    found = reuse.pending(reuse.grid_to_table(root, choice))
    assert sorted((r.source.name, r.target.name) for r in found) == [
        ("method=gelora_budget_id,optimizer.lr=0.001,seed=0,task=rt",
         "method=gelora_budget_id,seed=0,task=rt"),
        ("method=lora,optimizer.lr=0.001,seed=0,task=rt", "method=lora,seed=0,task=rt"),
    ]  # fmt: skip
