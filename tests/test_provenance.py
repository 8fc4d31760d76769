"""results.json says which code made it: gelora's commit (dirty or not) and library versions."""

from __future__ import annotations

import subprocess
from pathlib import Path

from gelora.stages.provenance import checkout_commit, code_provenance


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=root, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


def test_the_commit_is_read_and_a_change_under_src_or_conf_marks_it_dirty(tmp_path):
    assert checkout_commit(tmp_path) is None  # not a checkout
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("x = 1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "first")
    head = _git(tmp_path, "rev-parse", "HEAD")
    assert checkout_commit(tmp_path) == head
    (tmp_path / "notes.txt").write_text("outside src and conf\n")
    assert checkout_commit(tmp_path) == head
    (tmp_path / "src" / "a.py").write_text("x = 2\n")
    assert checkout_commit(tmp_path) == head + "+dirty"
    _git(tmp_path, "checkout", "-q", "--", "src")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "new.yaml").write_text("k: 1\n")
    assert checkout_commit(tmp_path) == head + "+dirty"


def test_provenance_names_gelora_and_the_libraries_behind_the_numbers():
    found = code_provenance()
    assert {"gelora", "transformers", "peft", "lightning"} <= set(found)
    root = Path(__file__).resolve().parents[1]
    if (root / ".git").exists():  # a clone: the record names its commit
        assert found["gelora_commit"].removesuffix("+dirty") == _git(root, "rev-parse", "HEAD")
