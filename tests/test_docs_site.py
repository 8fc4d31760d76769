"""The documentation site: its generated reference sections cover the code, and it builds strict.

docs/hooks/gelora_docs.py writes the configuration reference and the results.json fields from the
code; these tests fail when a schema field, a config option or a ``RunRecord`` field is missing
from them, and when ``mkdocs build --strict`` warns (a broken link, a docstring griffe cannot
parse, a page of the nav missing).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from gelora.config.schema import SCHEMAS
from gelora.record import RunRecord

REPO = Path(__file__).resolve().parents[1]
HOOKS = REPO / "docs" / "hooks" / "gelora_docs.py"


def test_hooks_generate_without_mkdocs(monkeypatch):
    """The generating functions are plain Python: they run where mkdocs cannot be imported."""
    monkeypatch.setitem(sys.modules, "mkdocs", None)  # import mkdocs -> ImportError
    spec = importlib.util.spec_from_file_location("gelora_docs_hooks_bare", HOOKS)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    assert "## Config groups" in module.config_reference_markdown()
    assert "| `status` |" in module.results_fields_markdown()


def test_config_reference_has_every_schema_key(hooks):
    text = hooks.config_reference_markdown()
    assert set(SCHEMAS) >= {"model", "task", "estimator", "trainer", "optimizer", "lora", "budget"}
    missing = [
        f"{node}.{field.name}"
        for node, schema in SCHEMAS.items()
        for field in dataclasses.fields(schema)
        if f"`{node}.{field.name}`" not in text
    ]
    assert not missing, f"config reference lacks schema keys: {missing}"


def test_config_reference_has_every_group_option(hooks):
    text = hooks.config_reference_markdown()
    conf = REPO / "conf"
    groups = [p for p in conf.iterdir() if p.is_dir() and not p.name.startswith("hydra")]
    assert {"model", "task", "method", "estimator", "trainer"} <= {g.name for g in groups}
    missing = []
    for group in groups:
        if f"### Group `{group.name}`" not in text:
            missing.append(group.name)
        for file in group.rglob("*.yaml"):
            option = file.relative_to(group).with_suffix("").as_posix()
            if f"| `{option}` |" not in text:
                missing.append(f"{group.name}={option}")
    assert not missing, f"config reference lacks groups or options: {missing}"


def test_config_reference_describes_from_comments(hooks):
    text = hooks.config_reference_markdown()
    # a trailing comment in conf/train.yaml, one in the schema, an option file's first comment
    assert "distinct training inputs in the sample" in text  # estimator.n_samples
    assert "tokenised splits shared across jobs" in text  # task.cache_tokens
    assert "The TwoNN estimator (Facco et al. 2017)." in text  # estimator=twonn
    assert "| `resume` |" in text and "| `checkpoint_every_n_steps` |" in text


def test_results_fields_list_every_run_record_field(hooks):
    text = hooks.results_fields_markdown()
    missing = [f.name for f in dataclasses.fields(RunRecord) if f"| `{f.name}` |" not in text]
    assert not missing, f"results.json fields lack: {missing}"
    assert "the embeddings output first" in text  # intrinsic_dims, from the class docstring


def test_copied_pages_keep_no_link_out_of_the_site(hooks):
    site = {"results/table_cpu/README.md", "results/table_cpu/table.md"}
    text = (
        "[`conf/x.yaml`](../../../conf/x.yaml), [table](table.md), [`main/`](main), "
        "`[a](b)` and [runs](runs.csv)\n```\n[kept](../../src/a.py)\n```"
    )
    out = hooks.rewrite_links(
        text, "results/table_cpu/README.md", "experiments/results/table_cpu/README.md", site
    )
    assert "`conf/x.yaml`," in out
    assert "[table](table.md)" in out
    assert "`experiments/results/table_cpu/main`" in out
    assert "`[a](b)`" in out  # code stays code
    assert "runs (`experiments/results/table_cpu/runs.csv`)" in out
    assert "[kept](../../src/a.py)" in out  # so does a fenced block


def test_mkdocs_build_strict(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    warnings = [line for line in build.stderr.splitlines() if "WARNING" in line]
    assert build.returncode == 0, "mkdocs build --strict failed:\n" + "\n".join(
        warnings or build.stderr.splitlines()[-30:]
    )
    site = tmp_path / "site"
    assert (site / "configuration" / "index.html").is_file()
    assert "gelora_schema" in (site / "configuration" / "index.html").read_text()
    assert "intrinsic_dims" in (site / "results-json" / "index.html").read_text()
    assert (site / "results" / "table_cpu" / "index.html").is_file()  # its README.md
