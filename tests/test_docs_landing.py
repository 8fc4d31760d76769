"""The landing page and the site's chrome: a short README without a dated log, nav titles that
are the pages' own titles, results pages titled by their tables, the repository link from
pyproject.toml, and a LICENSE and CITATION.cff that agree with pyproject.toml."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
README_MAX_LINES = 150
# sha256 of the Apache License 2.0 as the Apache Software Foundation publishes it
# (https://www.apache.org/licenses/LICENSE-2.0.txt), byte for byte.
LICENCE_TEXTS = {
    "Apache-2.0": "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30",
}
DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")
COMMIT = re.compile(r"\b(?:commit|at) [0-9a-f]{7,40}\b")


def pyproject_value(key: str) -> str:
    """A ``key = "value"`` (or ``key = { text = "value" }``) of pyproject.toml's [project]."""
    section = (REPO / "pyproject.toml").read_text().split("[project]", 1)[1].split("\n[", 1)[0]
    found = re.search(rf'^{key}\s*=\s*(?:{{\s*text\s*=\s*)?"([^"]+)"', section, re.MULTILINE)
    assert found, f"pyproject.toml's [project] has no {key}"
    return found.group(1)


class _AnyTagLoader(yaml.SafeLoader):
    """mkdocs.yml may hold ``!!python/name:`` tags (extensions' functions): read them as None."""


_AnyTagLoader.add_multi_constructor("tag:yaml.org,2002:python/", lambda *_: None)
_AnyTagLoader.add_multi_constructor("!", lambda *_: None)


def nav_entries(nav: list) -> list[tuple[str, str]]:
    """(title, page) of every page of a mkdocs nav, sections flattened."""
    found = []
    for item in nav:
        if isinstance(item, str):
            found.append(("", item))
            continue
        for title, value in item.items():
            found += nav_entries(value) if isinstance(value, list) else [(title, value)]
    return found


# --- README ----------------------------------------------------------------------------------


def test_readme_is_short_and_keeps_no_dated_log():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
    dated = [line for line in lines if DATE.search(line) or COMMIT.search(line)]
    assert not dated, f"README.md keeps a dated log (docs/benchmarks.md holds it): {dated[:3]}"


def test_the_dated_log_check_catches_a_dated_line():
    line = "Measured on 2026-12-02 at commit 9436178: command 1 took 268 s"
    assert DATE.search(line) and COMMIT.search(line)
    assert not DATE.search("arXiv 2412.09250") and not COMMIT.search("rank 3 at block 4")


def _paragraphs(text: str) -> list[str]:
    """A page's prose paragraphs (fenced blocks and tables left out), whitespace joined."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    blocks = [" ".join(b.split()) for b in text.split("\n\n")]
    return [b for b in blocks if b and not b.startswith(("|", "#", "!"))]


def test_getting_started_does_not_repeat_the_readme():
    guide = " ".join((REPO / "docs" / "getting-started.md").read_text().split())
    repeated = [p for p in _paragraphs((REPO / "README.md").read_text()) if p in guide]
    assert not repeated, f"docs/getting-started.md repeats README paragraphs: {repeated}"


# --- the site's chrome -----------------------------------------------------------------------


def test_every_nav_title_is_its_pages_first_heading(hooks):
    config = yaml.load((REPO / "mkdocs.yml").read_text(), Loader=_AnyTagLoader)
    entries = nav_entries(config["nav"])
    pages = {page for _, page in entries}
    assert {"architecture.md", "changelog.md", "benchmarks.md", "api.md"} <= pages
    wrong = []
    for title, page in entries:
        source = REPO / hooks.ROOT_PAGES[page] if page in hooks.ROOT_PAGES else REPO / "docs" / page
        heading = hooks.first_heading(source.read_text())
        if title != heading:
            wrong.append(f"{page}: nav {title!r}, heading {heading!r}")
    assert not wrong, "nav titles that are not the page's title:\n" + "\n".join(wrong)


def test_the_site_copies_buttons_and_renders_api_headings():
    config = yaml.load((REPO / "mkdocs.yml").read_text(), Loader=_AnyTagLoader)
    assert "content.code.copy" in config["theme"]["features"]
    (handler,) = [p["mkdocstrings"] for p in config["plugins"] if isinstance(p, dict)]
    assert handler["handlers"]["python"]["options"]["show_root_heading"] is True


def test_first_heading_is_the_heading_a_page_opens_with(hooks):
    assert hooks.first_heading("\n# Architecture\n\ntext\n# Later\n") == "Architecture"
    assert hooks.first_heading("| a |\n|---|\n\n# Placement effects\n") is None  # a section
    assert hooks.first_heading("## Paired differences\n") is None


@pytest.mark.parametrize(
    ("src_uri", "markdown", "title"),
    [  # gelora-table's table.md opens with the table; an h1 further down is a section
        ("results/table_cpu2/shuffled/table.md", "| m |\n", "Table: table_cpu2/shuffled"),
        ("results/table_cpu/table.md", "| m |\n\n# Placement effects\n", "Table: table_cpu"),
        ("results/arena_cpu/README.md", "# Table\n\ntext\n", "README: arena_cpu"),
        ("results/plan_ablation.md", "text without a heading\n", "Plan ablation (results)"),
        ("results/table_cpu/README.md", "# table_cpu: four tasks\n", None),
    ],
)  # fmt: skip
def test_results_pages_are_titled_by_their_table(hooks, src_uri, markdown, title):
    assert hooks.results_page_title(src_uri, markdown) == title


def test_retitle_replaces_a_bare_table_heading(hooks):
    out = hooks.retitle("# Table\n\n| a |\n", "Table: table_cpu")
    assert out == "# Table: table_cpu\n\n| a |\n"
    out = hooks.retitle("| a |\n\n# Placement effects\n", "Table: table_cpu")
    assert out == "# Table: table_cpu\n\n| a |\n\n# Placement effects\n"  # the section stays


def test_the_repository_link_comes_from_pyproject(hooks, tmp_path, monkeypatch):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\n\n[project.urls]\nHomepage = "https://example.org/gelora"\n'
        'Repository = "https://github.com/someone/gelora"\n\n[tool.ruff]\nline-length = 100\n'
    )
    urls = hooks.project_urls(pyproject)
    assert urls == {
        "Homepage": "https://example.org/gelora",
        "Repository": "https://github.com/someone/gelora",
    }
    assert hooks.repository_url(urls) == "https://github.com/someone/gelora"
    assert hooks.repository_url({"Homepage": "https://example.org"}) == "https://example.org"
    assert hooks.project_urls(tmp_path / "none.toml") == {}

    monkeypatch.setattr(hooks, "PYPROJECT", pyproject)
    config = hooks.on_config(SimpleNamespace(repo_url=None, repo_name=None))
    assert config.repo_url == "https://github.com/someone/gelora"
    assert config.repo_name == "someone/gelora"
    kept = hooks.on_config(SimpleNamespace(repo_url="https://elsewhere.org/r", repo_name="r"))
    assert kept.repo_url == "https://elsewhere.org/r"  # mkdocs.yml's own wins


# --- LICENSE and CITATION.cff ----------------------------------------------------------------


def test_license_is_the_full_text_of_pyprojects_licence():
    licence = pyproject_value("license")
    assert licence in LICENCE_TEXTS, f"no standard text known for pyproject's licence {licence}"
    text = (REPO / "LICENSE").read_bytes()
    assert hashlib.sha256(text).hexdigest() == LICENCE_TEXTS[licence]
    assert b"Apache License\n                           Version 2.0, January 2004" in text


def test_citation_cff_parses_and_agrees_with_pyproject():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors", "type", "version", "license"):
        assert cff.get(key), f"CITATION.cff lacks {key}"
    assert str(cff["version"]) == pyproject_value("version")
    assert cff["license"] == pyproject_value("license")
    paper = cff["preferred-citation"]
    for key in ("type", "title", "authors", "year"):
        assert paper.get(key), f"CITATION.cff's preferred-citation lacks {key}"
    assert [a["family-names"] for a in paper["authors"]] == ["Ed-dib", "Datbayev", "Aboussalah"]
    arxiv = re.search(r"arXiv (\d{4}\.\d{5})", (REPO / "README.md").read_text()).group(1)
    assert paper["url"] == f"https://arxiv.org/abs/{arxiv}"
