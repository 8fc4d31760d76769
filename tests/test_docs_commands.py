"""Every command in README.md and docs/*.md runs, so no documented command can rot.

Each page's fenced ``bash`` and ``python`` blocks are run in order in one temporary folder (a
sweep's folder made by one block is read by the next block's ``gelora-table``), at tiny size:

- ``gelora-train`` / ``gelora-plan``: with ``debug=tiny`` and, unless the command names a model,
  ``model=tiny_bert`` appended (a sweep, ``-m``, too), and the ID-profile and token caches off
  (the tests that check those caches share the test run's cache folder). A block preceded by
  ``<!-- docs-test: compose -->`` (GPU, hub, a long sweep, or the joblib launcher, whose
  two-job sweep tests/test_scaling.py runs for real) is only composed: ``-m`` dropped,
  the first value of each comma list, ``--cfg job``.
- ``gelora-table``: as written; a committed folder (``experiments/...``) is read from the
  repository, and the table is written into the temporary folder (without its figures, which
  are committed; ``tests/test_table.py`` draws them).
- ``python experiments/<script>.py``: as written, or with ``--help`` only after
  ``<!-- docs-test: help -->``.
- ``gelora-sync``: with ``--dry-run`` (nothing uploaded); it exits 2 when it finds no run.
- ``wandb <command>`` (``wandb login``: a network and a key): only after
  ``<!-- docs-test: help -->``, as ``wandb <command> --help``.
- ``pip install``: the extras it names must exist in pyproject.toml; ``python -m pytest``: CI
  (``.ci/run``) must run the same command; ``mkdocs build``: ``tests/test_docs_site.py`` runs it.
- ``python`` blocks: run as a script (``runpy``, in this process).

Printed output belongs in ``text`` blocks; a command of any other form fails the test, so a new
kind of documented command gets a rule here before it can go stale.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import run_console_script

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARKER = re.compile(r"<!--\s*docs-test:\s*(\w+)\s*-->")
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
RUNNABLE = {"bash": "bash", "sh": "bash", "shell": "bash", "console": "bash", "python": "python"}
TINY = ["debug=tiny"]
# The shared test cache keeps its ID profiles and token caches for the tests that check them
# ("computed", then "reused"): documented commands neither read nor write them.
NO_CACHES = ["estimator.cache=false", "task.cache_tokens=false"]
TIMEOUT_S = 600


@dataclass(frozen=True)
class Block:
    """A fenced block of a page: its language, text, first line number and marker."""

    language: str
    text: str
    line: int
    marker: str | None


def fenced_blocks(page: Path) -> list[Block]:
    """The page's ``bash`` and ``python`` blocks, with the ``docs-test`` marker just above each."""
    blocks, lines = [], page.read_text().splitlines()
    index = 0
    while index < len(lines):
        opened = FENCE.match(lines[index])
        if not opened:
            index += 1
            continue
        indent, language = opened.groups()
        above = next((s for s in reversed(lines[:index]) if s.strip()), "")
        marker = MARKER.search(above)
        end = next(j for j in range(index + 1, len(lines)) if lines[j].strip() == "```")
        body = [line.removeprefix(indent) for line in lines[index + 1 : end]]
        if language in RUNNABLE:
            blocks.append(
                Block(RUNNABLE[language], "\n".join(body), index + 1, marker and marker.group(1))
            )
        index = end + 1
    return blocks


def commands(text: str) -> list[list[str]]:
    """A bash block's commands as argument lists: continuations joined, comments dropped, each
    ``&&`` part its own command."""
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            found.append(words[:cut])
            words = words[cut + 1 :]
    return [words for words in found if words]


def _first_grid_point(arguments: list[str]) -> list[str]:
    """A sweep's overrides as one job: each ``key=a,b`` as ``key=a`` (values in brackets or
    braces are kept whole)."""
    point = []
    for argument in arguments:
        key, sign, value = argument.partition("=")
        if sign and "," in value and value[:1] not in "[{(" and not key.startswith("hydra."):
            value = value.split(",")[0]
        point.append(f"{key}{sign}{value}")
    return point


def _tiny(arguments: list[str]) -> list[str]:
    named_model = any(a.split("=")[0].lstrip("+~") == "model" for a in arguments)
    return [*arguments, *TINY, *NO_CACHES, *([] if named_model else ["model=tiny_bert"])]


def _repo_path(argument: str) -> str:
    """A committed path (``experiments/...``, ``conf/...``) as the repository's, else as given."""
    first = argument.split("/")[0]
    return str(REPO / argument) if first in ("experiments", "conf") else argument


class PageRun:
    """Runs one page's blocks in order in ``folder``."""

    def __init__(self, page: Path, folder: Path):
        self.page, self.folder = page, folder
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.runs = 0

    def fail(self, block: Block, words: list[str], why: str) -> None:
        pytest.fail(f"{self.page.name}:{block.line}: `{shlex.join(words)}`: {why}", pytrace=False)

    def call(self, block: Block, words: list[str], argv: list[str]) -> None:
        done = subprocess.run(argv, cwd=self.folder, env=self.env, capture_output=True,
                              text=True, timeout=TIMEOUT_S)  # fmt: skip
        if done.returncode != 0:
            tail = (done.stderr or done.stdout)[-1500:]
            self.fail(block, words, f"exit {done.returncode} (ran {shlex.join(argv)}):\n{tail}")

    def run_block(self, block: Block) -> None:
        if block.language == "python":
            script = self.folder / f"block_{block.line}.py"
            script.write_text(block.text)
            # run as `python block.py` would run it, in this process (no interpreter start)
            entry = lambda: runpy.run_path(str(script), run_name="__main__")  # noqa: E731
            self.in_process(block, ["python", script.name], entry, ["python", script.name])
            return
        for words in commands(block.text):
            self.run_command(block, words)

    def run_command(self, block: Block, words: list[str]) -> None:
        program, arguments = words[0], words[1:]
        if program in ("gelora-train", "gelora-plan"):
            self.run_app(block, words)
        elif program == "gelora-table":
            paths = [_repo_path(a) if not a.startswith("-") else a for a in arguments]
            out = [] if "--out" in paths else ["--out", str(self.folder / f"table_{block.line}")]
            if any(a != p for a, p in zip(arguments, paths, strict=True)):  # a committed sweep:
                out.append("--no-plots")  # its figures are committed; tests/test_table.py draws
            from gelora.table.cli import main as table_main

            self.in_process(block, words, lambda: table_main([*paths, *out]), words)
        elif program == "gelora-sync":
            from gelora.sync.cli import main as sync_main

            dry = [*arguments, *([] if "--dry-run" in arguments else ["--dry-run"])]
            self.in_process(block, words, lambda: sync_main(dry), ["gelora-sync", *dry])
        elif program == "wandb" and arguments:
            if block.marker != "help":
                self.fail(block, words, "wandb commands run as --help only, after "
                          "<!-- docs-test: help --> (they need a network and a key)")  # fmt: skip
            self.call(block, words, [sys.executable, "-m", "wandb", arguments[0], "--help"])
        elif program in ("pip", "pip3") or (program == "python" and arguments[:2] == ["-m", "pip"]):
            check_extras(block, words, self)
        elif program == "python" and arguments[:2] == ["-m", "pytest"]:
            if "python -m pytest" not in (REPO / ".ci" / "run").read_text():
                self.fail(block, words, ".ci/run does not run `python -m pytest`")
        elif program == "mkdocs":
            if arguments[:1] != ["build"] or not (REPO / "mkdocs.yml").is_file():
                self.fail(block, words, "only `mkdocs build` of the repository's mkdocs.yml")
        elif program == "python" and arguments and arguments[0].startswith("experiments/"):
            script = [sys.executable, str(REPO / arguments[0])]
            rest = ["--help"] if block.marker == "help" else [_repo_path(a) for a in arguments[1:]]
            self.call(block, words, [*script, *rest])
        elif program == "export" and arguments and "=" in arguments[0]:
            key, _, value = arguments[0].partition("=")
            self.env[key] = value
        else:
            self.fail(
                block, words, "no rule runs this kind of command (tests/test_docs_commands.py)"
            )

    def in_process(self, block: Block, words: list[str], entry, argv: list[str]) -> None:
        """``entry()`` in this process (``helpers.run_console_script``: no interpreter start,
        about 1 s a tiny run instead of 6), in the page's folder, with ``argv`` as the console
        script would see it; a non-zero exit fails the test with the command's last output."""
        ran = run_console_script(entry, argv, cwd=self.folder)
        if ran.returncode != 0:
            said = ran.stdout[-700:] + ran.stderr[-1500:]
            self.fail(block, words, f"exit {ran.returncode}:\n{said}")

    def run_app(self, block: Block, words: list[str]) -> None:
        """gelora-train / gelora-plan through their console-script functions, in process."""
        from gelora.plan.cli import main as plan_cli
        from gelora.train import cli

        program, arguments = words[0], words[1:]
        entry = cli if program == "gelora-train" else plan_cli
        sweep = "-m" in arguments or "--multirun" in arguments
        if block.marker == "compose" or "--cfg" in arguments:
            point = _first_grid_point([a for a in arguments if a not in ("-m", "--multirun")])
            point = [a for a in point if not a.startswith("--cfg") and a != "job"]
            self.in_process(block, words, entry, [program, *point, "--cfg", "job"])
            return
        self.runs += 1
        given = {a.split("=")[0]: a.split("=", 1)[-1] for a in arguments}
        where = "hydra.sweep.dir" if sweep else "hydra.run.dir"
        folder = Path(given.get(where, self.folder / f"run_{self.runs}"))
        folder = folder if folder.is_absolute() else self.folder / folder
        # absolute: joblib's workers outlive a command and keep the folder they started in
        arguments = [a for a in arguments if a.split("=")[0] != where]
        self.in_process(block, words, entry, [program, *_tiny(arguments), f"{where}={folder}"])
        if program == "gelora-train":  # a sweep exits 0 when jobs fail: read their records
            records = sorted(folder.glob("*/results.json") if sweep else [folder / "results.json"])
            statuses = {str(r.parent.name): json.loads(r.read_text())["status"] for r in records}
            if not records or set(statuses.values()) != {"completed"}:
                found = sorted(p.name for p in folder.parent.glob("*"))
                self.fail(block, words, f"not every run completed under {folder}: "
                          f"{statuses or 'no results.json'} (beside it: {found})")  # fmt: skip


def pyproject_extras() -> set[str]:
    """The names of pyproject.toml's optional-dependency groups (read without tomllib, which
    Python 3.10 lacks)."""
    text = (REPO / "pyproject.toml").read_text()
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^([\w-]+)\s*=", section, flags=re.MULTILINE))


def check_extras(block: Block, words: list[str], run: PageRun) -> None:
    """``pip install -e ".[a,b]"``: every extra named exists in pyproject.toml."""
    known = pyproject_extras()
    for word in words:
        extras = re.search(r"\[([\w,\s-]+)\]", word)
        if word.startswith((".", "gelora")) and extras:
            missing = {e.strip() for e in extras.group(1).split(",")} - known
            if missing:
                run.fail(block, words, f"no such extra in pyproject.toml: {sorted(missing)}")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_documented_command_runs(page, tmp_path):
    blocks = fenced_blocks(page)
    run = PageRun(page, tmp_path)
    for block in blocks:
        run.run_block(block)


def test_the_readme_gives_the_two_commands_first():
    blocks = fenced_blocks(REPO / "README.md")
    first = commands(blocks[0].text)
    programs = [words[0] for words in first]
    assert programs[:4] == ["python", "gelora-train", "python", "python"]
    assert any(words[:3] == ["python", "-m", "pytest"] for words in first)


def test_the_runner_refuses_a_command_it_has_no_rule_for(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n\n```bash\nrm -rf somewhere\n```\n")
    run = PageRun(page, tmp_path)
    with pytest.raises(pytest.fail.Exception, match="no rule runs this kind of command"):
        run.run_block(fenced_blocks(page)[0])


def test_a_broken_documented_command_fails_the_test(tmp_path):
    # a key that no schema has: the command exits 1 and the test names the page and line
    page = tmp_path / "page.md"
    page.write_text(
        "intro\n\n<!-- docs-test: compose -->\n```bash\ngelora-train budget.rnak=2\n```\n"
    )
    run = PageRun(page, tmp_path)
    with pytest.raises(pytest.fail.Exception, match=r"page.md:4: `gelora-train budget.rnak=2`"):
        run.run_block(fenced_blocks(page)[0])


def test_a_failing_python_block_fails_the_test(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n\n```python\nprint('ran')\nraise ValueError('broken example')\n```\n")
    run = PageRun(page, tmp_path)
    with pytest.raises(pytest.fail.Exception, match=r"(?s)page.md:3: .*exit 1.*broken example"):
        run.run_block(fenced_blocks(page)[0])


def test_a_wandb_command_runs_only_as_its_help(tmp_path):
    # `wandb sync` uploads and `wandb login` asks for a key: neither may run in the tests
    page = tmp_path / "page.md"
    page.write_text("text\n\n```bash\nwandb sync somewhere\n```\n")
    run = PageRun(page, tmp_path)
    with pytest.raises(pytest.fail.Exception, match="wandb commands run as --help only"):
        run.run_block(fenced_blocks(page)[0])
