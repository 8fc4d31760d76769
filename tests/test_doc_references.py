"""Every place the docs, comments and docstrings say something lives is checked against the code:
each dotted ``gelora.<module>[.<name>...]`` resolves (the module imports, the names exist in
it), and each repository path (``src/gelora/...``, ``conf/...``, ``tests/...``,
``experiments/...``, ``docs/...``) exists. CHANGELOG.md is left out: it names old places on
purpose."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = [
    *sorted((REPO / "src" / "gelora").rglob("*.py")),
    REPO / "README.md",
    REPO / "ARCHITECTURE.md",
    *sorted((REPO / "docs").glob("*.md")),
]
DOTTED = re.compile(r"(?<![\w./-])gelora(?:\.[A-Za-z_]\w*)+")
PATH = re.compile(
    r"(?<![\w./<-])(?:src/gelora|conf|tests|experiments|docs)/[\w./-]+\.(?:py|yaml|md|json|png|csv)\b"
)


def resolves(dotted: str) -> bool:
    """Whether the longest importable prefix of ``dotted`` holds the rest as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(target, name):
                return False
            target = getattr(target, name)
        return True
    return False


def _references(pattern: re.Pattern) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for source in SOURCES:
        for number, line in enumerate(source.read_text().splitlines(), 1):
            for match in pattern.finditer(line):
                where = f"{source.relative_to(REPO)}:{number}"
                found.setdefault(match.group(0).rstrip("."), []).append(where)
    return found


def _placeholder(path: str) -> bool:
    """A pattern or a stand-in (``conf/model/MODEL.yaml``, ``*.yaml``), not a path."""
    return "*" in path or any(part.isupper() for part in re.split(r"[/.]", path))


def test_every_dotted_gelora_name_resolves():
    unresolved = {
        name: places for name, places in _references(DOTTED).items() if not resolves(name)
    }
    assert not unresolved, "\n".join(f"{n} ({', '.join(p[:3])})" for n, p in unresolved.items())


def test_every_repository_path_named_exists():
    missing = {
        path: places
        for path, places in _references(PATH).items()
        if not (REPO / path).exists() and not _placeholder(path)
    }
    assert not missing, "\n".join(f"{p} ({', '.join(w[:3])})" for p, w in missing.items())


def test_the_checks_catch_a_wrong_place():
    assert resolves("gelora.methods.adalora.AdaLoRAAllocation")
    assert not resolves("gelora.training.adalora.AdaLoRAAllocation")
    assert not resolves("gelora.record.NoSuchRecord")
