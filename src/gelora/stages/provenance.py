"""Which code made a record: gelora's version and commit, and the libraries behind its numbers.

A sweep can run for days while the code moves on; ``results.json`` (``environment``) then says
which commit each job ran, and ``+dirty`` when ``src/`` or ``conf/`` held uncommitted changes.
"""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path

LIBRARIES = ("transformers", "peft", "lightning")


def _git(*args: str, cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.cache
def code_provenance() -> dict[str, str]:
    """``gelora`` (the installed version), ``gelora_commit`` (in a git checkout: the commit, with
    ``+dirty`` when ``src/`` or ``conf/`` differ from it) and each library's version."""
    found: dict[str, str] = {}
    for name in ("gelora", *LIBRARIES):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    commit = checkout_commit(Path(__file__).resolve().parents[3])  # src/gelora/stages/
    if commit is not None:
        found["gelora_commit"] = commit
    return found


def checkout_commit(root: Path) -> str | None:
    """The commit checked out at ``root``, ``+dirty`` when its ``src/`` or ``conf/`` differ
    from it (tracked changes or new files); ``None`` outside a git checkout."""
    if not (root / ".git").exists():
        return None
    commit = _git("rev-parse", "HEAD", cwd=root)
    if not commit:
        return None
    changed = _git("status", "--porcelain", "--", "src", "conf", cwd=root)
    return commit + ("+dirty" if changed else "")
