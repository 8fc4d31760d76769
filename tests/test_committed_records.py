"""The records committed under experiments/results carry no absolute path of the machine that ran
them (paths are relative to the run folder, or null), and gelora-table still reads them."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path

import pytest

from gelora.table.sweep_runs import load_sweep

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
TEXT_SUFFIXES = (".csv", ".md", ".tex")
# An absolute path inside text: a "/" that starts a token (line start, after a space, a quote,
# "=", "(", "[", ",", "`" or "<") and is followed by a folder name and another "/" (so neither
# "val/accuracy" nor "alpha/r" nor a URL's "//"), "~/", or a Windows drive.
EMBEDDED = re.compile(
    r"(?:^|(?<=[\s\"'=(\[,`<]))(?:/(?!/)[\w.+-]+/|~/|[A-Za-z]:\\[\w.])", re.MULTILINE
)


def absolute_paths(value, where: str = ""):
    """(where, text) of every string in a JSON value that is or holds an absolute path."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from absolute_paths(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from absolute_paths(item, f"{where}[{index}]")
    elif isinstance(value, str) and (value.startswith(("/", "~/")) or EMBEDDED.search(value)):
        yield where.lstrip("."), value[:120]


def committed_files(suffixes: tuple[str, ...]) -> list[Path]:
    """The files under experiments/results that git tracks (a sweep running in this checkout
    leaves checkpoints and adapters beside them that are never committed); every file there
    outside a git checkout."""
    root = RESULTS.parents[1]
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", str(RESULTS)], cwd=root, capture_output=True, text=True
    )
    if listed.returncode == 0 and listed.stdout:
        files = [root / name for name in listed.stdout.split("\0") if name]
    else:
        files = [p for p in RESULTS.rglob("*") if p.is_file()]
    return sorted(p for p in files if p.name.endswith(suffixes) and ".hydra" not in p.parts)


def _json_values(path: Path) -> list:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [json.loads(path.read_text())]


def test_committed_json_records_hold_no_absolute_path():
    files = committed_files((".json", ".jsonl"))
    assert any(p.name == "results.json" for p in files)  # the walk found the records
    found = [
        f"{path.relative_to(ROOT)}: {where} = {text}"
        for path in files
        for value in _json_values(path)
        for where, text in absolute_paths(value)
    ]
    assert not found, (
        f"{len(found)} absolute path(s) in committed records (python "
        "experiments/relativize_records.py rewrites them):\n" + "\n".join(found[:20])
    )


def test_committed_tables_and_answers_hold_no_absolute_path():
    found = [
        f"{path.relative_to(ROOT)}:{text[: match.start()].count(chr(10)) + 1}: "
        f"{text[match.start() : match.start() + 80]}"
        for path in committed_files(TEXT_SUFFIXES)
        for text in [path.read_text()]
        for match in EMBEDDED.finditer(text)
    ]
    assert not found, "absolute paths in committed files:\n" + "\n".join(found[:20])


def test_committed_hydra_files_hold_no_absolute_path():
    """Hydra's own records (``.hydra/*.yaml``, ``multirun.yaml``) included: gelora writes them
    portable now (``gelora.run_folder.portable_hydra``), and
    ``experiments/portable_hydra_files.py`` rewrote the older ones."""
    files = sorted(RESULTS.rglob("*.yaml"))
    assert any(p.name == "hydra.yaml" for p in files) and any(
        p.name == "multirun.yaml" for p in files
    )
    found = [
        f"{path.relative_to(ROOT)}: {text[match.start() : match.start() + 80]}"
        for path in files
        for text in [path.read_text()]
        for match in EMBEDDED.finditer(text)
    ]
    assert not found, "absolute paths in committed Hydra files:\n" + "\n".join(found[:20])


def test_the_path_check_sees_what_it_must_and_only_that():
    record = {
        "adapter_dir": "adapter",
        "scaling": {"text": "alpha/r = 2"},
        "metrics": {"val/accuracy": 0.5},
        "url": "https://example.org/a/b",
        "traceback": 'File "/work/wt/src/gelora/x.py", line 3',
        "id_profile_cache": {"path": "/root/.cache/gelora/id_profiles/k.json"},
        "files": ["~/data/train.csv", "C:\\data\\x.csv"],
        "code": "with open(f) as f:\n    pass",
    }
    assert [where for where, _ in absolute_paths(record)] == [
        "traceback",
        "id_profile_cache.path",
        "files[0]",
        "files[1]",
    ]


def _relativize():
    path = ROOT / "experiments" / "relativize_records.py"
    spec = importlib.util.spec_from_file_location("relativize_records", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_relativize_makes_run_paths_relative_and_drops_other_machines_paths(tmp_path):
    relativize = _relativize()
    run = "/old/machine/runs/method=lora,seed=0"
    record = {
        "status": "completed",
        "metrics": {"test/accuracy": 0.8125},
        "adapter_dir": f"{run}/adapter",
        "resumed_from": {"checkpoint": f"{run}/checkpoints/last.ckpt", "optimizer_step": 45},
        "benchmarks": {"files": {"ifbench": f"{run}/ifbench_answers.jsonl"}},
        "id_profile_cache": {"outcome": "reused", "key": "k", "path": "/root/.cache/x/k.json"},
        "config": {"paths": {"output_dir": run}, "task": {"train_file": "data/train.csv"}},
    }
    path = tmp_path / "job" / "results.json"
    path.parent.mkdir()
    path.write_text(json.dumps(record, indent=2) + "\n")
    changes = relativize.relativize(path)
    assert len(changes) == 5
    new = json.loads(path.read_text())
    assert new["adapter_dir"] == "adapter"
    assert new["resumed_from"] == {"checkpoint": "checkpoints/last.ckpt", "optimizer_step": 45}
    assert new["benchmarks"]["files"] == {"ifbench": "ifbench_answers.jsonl"}
    assert new["id_profile_cache"] == {"outcome": "reused", "key": "k", "path": None}
    assert new["config"] == {"paths": {"output_dir": "."}, "task": {"train_file": "data/train.csv"}}
    assert new["metrics"] == record["metrics"] and path.read_text().endswith("}\n")
    assert relativize.relativize(path) == []  # a second pass finds nothing


def test_relativize_points_a_copied_record_at_its_source_in_this_repository():
    relativize = _relativize()
    here = RESULTS / "table_cpu" / "main" / "method=lora,seed=0,task=snli"
    old = "/elsewhere/wt/experiments/results/table_cpu/lr_grid/method=lora,seed=0/adapter"
    assert relativize.relative(old, here, None) == "../../lr_grid/method=lora,seed=0/adapter"


@pytest.mark.parametrize("sweep", ["table_cpu/main", "table_cpu/budget"])
def test_gelora_table_reads_every_committed_job(sweep):
    read = load_sweep(RESULTS / sweep)
    assert read.skipped == []
    assert all(r.status == "completed" and r.test_rows for r in read.runs)
    assert all(" [" not in r.task for r in read.runs)  # one row set and metric per task
