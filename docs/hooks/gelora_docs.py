"""MkDocs hooks of the documentation site (``hooks:`` in mkdocs.yml).

Two reference sections are generated from the code, so that they cannot drift from it:

- ``config_reference_markdown()``: every config group of ``conf/`` with its options, every key of
  every typed node (the dataclasses of ``gelora.config.schema`` that ``register_schemas`` puts in
  Hydra's ConfigStore as ``gelora_schema/<node>``) and the top-level keys of ``conf/train.yaml``;
  a page shows it where it holds ``<!-- gelora:config-reference -->``.
- ``results_fields_markdown()``: every field of ``gelora.record.RunRecord`` (``results.json``);
  marker ``<!-- gelora:results-fields -->``.

Descriptions are the comments and docstrings next to the code, read with ``ast`` and ``tokenize``.
The committed results under ``experiments/results/`` and ``ARCHITECTURE.md``/``CHANGELOG.md`` are
added to the site (``on_files``; the two root pages in the nav), their links out of the site
rewritten to plain code text; a results page without a title of its own (no first heading, or
gelora-table's bare ``Table``) gets one from its folder (``results_page_title``). The repository
link (``repo_url``) comes from pyproject.toml's ``[project.urls]`` (``on_config``).

The generating functions are plain Python: this module imports mkdocs only inside the event
functions, so tests/test_docs_site.py checks it in the default test run.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import posixpath
import re
import subprocess
import sys
import tokenize
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = REPO / "pyproject.toml"
CONF = REPO / "conf"
SRC = REPO / "src"
RESULTS = REPO / "experiments" / "results"

CONFIG_MARKER = "<!-- gelora:config-reference -->"
RESULTS_MARKER = "<!-- gelora:results-fields -->"

# Repository files shown in the site under another name: site path -> repository path.
ROOT_PAGES = {"architecture.md": "ARCHITECTURE.md", "changelog.md": "CHANGELOG.md"}
RESULT_SUFFIXES = (".md", ".png")
MAX_JSON_BYTES = 200_000


def _import(module: str) -> Any:
    """A gelora module, from the checkout's src/ when gelora is not installed."""
    try:
        return __import__(module, fromlist=["_"])
    except ModuleNotFoundError:
        sys.path.insert(0, str(SRC))
        return __import__(module, fromlist=["_"])


# --- markdown helpers ------------------------------------------------------------------------

_CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def _cell(text: str) -> str:
    """Text for a markdown table cell: one line; ``|``, ``<`` and ``>`` escaped outside code spans
    (a comment's ``<run dir>`` is not an HTML tag; a pipe in a code span splits no cell)."""
    text = " ".join(text.split())
    out, last = [], 0
    for match in _CODE_SPAN.finditer(text):
        out.append(_escape(text[last : match.start()]))
        out.append(match.group(0))
        last = match.end()
    out.append(_escape(text[last:]))
    return "".join(out) or "—"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _first_sentence(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    sentence = re.split(r"(?<=[.!?])\s+(?=[A-Z(])", text, maxsplit=1)[0]
    return sentence if len(sentence) <= limit else sentence[: limit - 3].rstrip() + "..."


# --- comments of yaml files ------------------------------------------------------------------

_YAML_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w.-]*):(?P<rest>.*)$")
_YAML_ITEM = re.compile(r"^(?P<indent> *)- (?P<key>[\w./@-]+):(?P<rest>.*)$")


def _split_comment(rest: str) -> tuple[str, str, int]:
    """A yaml line's value and trailing comment (a ``#`` after a space, outside quotes), and the
    comment's offset in ``rest`` (-1: none)."""
    quote = None
    for i, ch in enumerate(rest):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or rest[i - 1] in " \t"):
            return rest[:i].strip(), rest[i + 1 :].strip(), i
    return rest.strip(), "", -1


@dataclasses.dataclass
class YamlKey:
    path: str  # dotted
    value: str
    comment: str  # the trailing comment with its continuation lines, else the block above
    depth: int


def yaml_keys(path: Path) -> list[YamlKey]:
    """Every mapping key of a yaml file (dotted paths, in file order) with its description.

    A key's description is its trailing comment, continued by comment-only lines aligned with it;
    a key without one takes the comment block right above it, which also describes the keys that
    follow at the same depth up to a blank line. The ``defaults`` list is read as keys
    ``defaults.<group>``.
    """
    keys: list[YamlKey] = []
    stack: list[tuple[int, str]] = []
    block: list[str] = []  # the comment block above the next key
    block_indent = -1
    inherited: tuple[int, str] | None = None  # (indent, text) of a block still applying
    last: YamlKey | None = None
    last_column = -1
    in_defaults = False
    header = True  # the file's leading comment describes the file, not its first key
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if header and (not stripped or stripped.startswith("#")):
            continue
        header = False
        if not stripped:
            block, inherited, last = [], None, None
            continue
        if stripped.startswith("#"):
            column = len(line) - len(line.lstrip())
            text = stripped.lstrip("#").strip()
            if last is not None and column == last_column and last_column > 0:
                last.comment = f"{last.comment} {text}".strip()
                continue
            if text.startswith("@package") or text.startswith("ruff:"):
                continue
            if not block:
                block_indent = column
            block.append(text)
            last = None
            continue
        match = _YAML_KEY.match(line)
        item = _YAML_ITEM.match(line) if not match else None
        if item and in_defaults:
            value, comment, offset = _split_comment(item.group("rest"))
            entry = YamlKey(f"defaults.{item.group('key')}", value, comment, 1)
            keys.append(entry)
            last = entry if comment else None
            last_column = len(item.group("indent")) + 2 + len(item.group("key")) + 1 + offset
            block = []
            continue
        if not match:
            last = None
            continue
        indent = len(match.group("indent"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([k for _, k in stack] + [match.group("key")])
        stack.append((indent, match.group("key")))
        in_defaults = dotted == "defaults"
        value, comment, offset = _split_comment(match.group("rest"))
        if not comment:
            if block and block_indent == indent:
                inherited = (indent, " ".join(block))
            if inherited and inherited[0] == indent:
                comment = inherited[1]
        else:
            inherited = None
        block = []
        entry = YamlKey(dotted, value, comment, len(stack))
        keys.append(entry)
        last = entry if offset >= 0 else None
        last_column = indent + len(match.group("key")) + 1 + offset
    return keys


def _header_comment(path: Path) -> str:
    """The first sentence of a yaml file's leading comment (``@package`` lines skipped)."""
    lines = []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            break
        raw = stripped[1:]
        if lines and (not raw.strip() or raw.startswith("   ")):
            break  # a blank comment line or an indented command ends the paragraph
        text = raw.strip()
        if text and not text.startswith("@package"):
            lines.append(text)
    return _first_sentence(" ".join(lines)) if lines else ""


# --- comments of python source ---------------------------------------------------------------


def _comments_by_line(source: str) -> dict[int, str]:
    comments = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    return comments


@dataclasses.dataclass
class SourceField:
    name: str
    annotation: str
    trailing: str  # the comment on the field's line
    block: str  # the comment block above it (or above the fields before it, up to a blank line)


def class_fields_source(path: Path, class_name: str) -> tuple[list[SourceField], str]:
    """A class's annotated fields as its source writes them, with their comments, and its
    docstring."""
    source = path.read_text()
    lines = source.splitlines()
    comments = _comments_by_line(source)
    tree = ast.parse(source)
    cls = next(
        n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name
    )  # StopIteration: no such class
    out: list[SourceField] = []
    inherited = ""
    previous_end = cls.body[0].lineno - 1 if cls.body else cls.lineno
    for node in cls.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            previous_end = node.end_lineno or node.lineno
            continue
        above = []
        blank = False
        for number in range(previous_end + 1, node.lineno):
            text = lines[number - 1].strip()
            if not text:
                blank, above = True, []
            elif text.startswith("#") and number in comments:
                above.append(comments[number])
        if above:
            inherited = " ".join(above)
        elif blank:
            inherited = ""
        trailing = comments.get(node.lineno, "")
        if trailing.startswith("type:") or trailing.startswith("noqa"):
            trailing = ""
        out.append(SourceField(node.target.id, ast.unparse(node.annotation), trailing, inherited))
        previous_end = node.end_lineno or node.lineno
    return out, ast.get_docstring(cls) or ""


# --- the config reference --------------------------------------------------------------------


def config_groups() -> dict[str, dict[str, str]]:
    """Every config group (a folder of conf/, Hydra's own excluded): option -> description (the
    first sentence of the option file's leading comment)."""
    groups: dict[str, dict[str, str]] = {}
    for folder in sorted(p for p in CONF.iterdir() if p.is_dir()):
        if folder.name.startswith("hydra"):
            continue
        groups[folder.name] = {
            file.relative_to(folder).with_suffix("").as_posix(): _header_comment(file)
            for file in sorted(folder.rglob("*.yaml"))
        }
    return groups


def _default(field: dataclasses.Field) -> str:
    from omegaconf import MISSING

    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "required"
    if value == MISSING:
        return "required (`???`)"
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return _code(str(value).lower())
    return _code(str(value))


def schema_nodes() -> dict[str, type]:
    """The typed nodes, as ``register_schemas`` registers them (``gelora_schema/<node>``)."""
    return dict(_import("gelora.config.schema").SCHEMAS)


def _node_comments(node: str, train_keys: dict[str, YamlKey], default_option: str | None):
    """key -> description from conf/train.yaml, then the group's default option file, then the
    group's other option files (the first comment found)."""
    found: dict[str, str] = {}
    for key, entry in train_keys.items():
        if key.startswith(node + ".") and entry.comment and key.count(".") == 1:
            found[key.split(".", 1)[1]] = entry.comment
    folder = CONF / node
    if folder.is_dir():
        files = sorted(folder.glob("*.yaml"))
        if default_option and (folder / f"{default_option}.yaml").is_file():
            files.insert(0, folder / f"{default_option}.yaml")
        for file in files:
            for entry in yaml_keys(file):
                if entry.depth == 1 and entry.comment:
                    found.setdefault(entry.path, entry.comment)
    return found


def config_reference_markdown() -> str:
    """The reference of every config group, typed node and top-level key, as markdown."""
    train = {k.path: k for k in yaml_keys(CONF / "train.yaml")}
    defaults = {
        key.split(".", 1)[1]: entry for key, entry in train.items() if key.startswith("defaults.")
    }
    out = [
        "## Config groups",
        "",
        "A group is a folder of `conf/`; pick an option with `<group>=<option>` on the command "
        "line (`gelora-train model=minilm_l3 task=snli`). Generated from `conf/`: each option's "
        "description is its file's first comment.",
        "",
    ]
    for group, options in config_groups().items():
        entry = defaults.get(group)
        out += [f"### Group `{group}`", ""]
        if entry is not None:
            default = entry.value if entry.value not in ("", "null") else "none"
            about = f" — {_cell(entry.comment)}" if entry.comment else ""
            out += [f"Default: `{default}`{about}", ""]
        rows = [[_code(name), _cell(text)] for name, text in options.items()]
        out += _table(["option", "description"], rows)

    out += [
        "## Typed nodes",
        "",
        "Each node below has a schema in `gelora.config.schema`, registered in Hydra's "
        "ConfigStore as `gelora_schema/<node>` and put under the node by `conf/train.yaml`'s "
        "defaults list: a value of the wrong type or an unknown key fails when the config is "
        "composed. Generated from the dataclasses; a description is the field's comment in the "
        "schema or in `conf/` (`conf/train.yaml`, else the group's files).",
        "",
    ]
    schema_path = SRC / "gelora" / "config" / "schema.py"
    for node, schema in schema_nodes().items():
        source_fields, docstring = class_fields_source(schema_path, schema.__name__)
        by_name = {f.name: f for f in source_fields}
        entry = defaults.get(node)
        default_option = entry.value if entry is not None else None
        conf_comments = _node_comments(node, train, default_option)
        out += [f"### Node `{node}`", "", f"Schema `{schema.__name__}`."]
        if docstring:
            out[-1] += " " + " ".join(docstring.split())
        out.append("")
        rows = []
        for field in dataclasses.fields(schema):
            source = by_name.get(field.name)
            description = (
                (source.trailing if source else "")
                or conf_comments.get(field.name, "")
                or (source.block if source else "")
            )
            annotation = source.annotation if source else str(field.type)
            rows.append(
                [
                    _code(f"{node}.{field.name}"),
                    _code(annotation),
                    _default(field),
                    _cell(description),
                ]
            )
        out += _table(["key", "type", "default", "description"], rows)

    out += [
        "## Keys of `conf/train.yaml`",
        "",
        "The run's own settings, outside the groups and typed nodes (whose keys are above), "
        "with their comments in `conf/train.yaml`.",
        "",
    ]
    nodes = set(schema_nodes())
    rows = []
    for key, entry in train.items():
        top = key.split(".", 1)[0]
        if top in ("defaults", "hydra") and key != "hydra":
            continue
        if top in nodes and key != top:
            continue
        if key != top and train[top].value:  # a flow mapping's keys
            continue
        value = _code(entry.value) if entry.value else ""
        description = _cell(entry.comment)
        if not entry.comment and key in nodes:
            description = f"a typed node: [Node `{key}`](#node-{key})"
        elif not entry.comment and key == "hydra":
            children = [
                k.split(".")[1] for k in train if k.count(".") == 1 and k.startswith("hydra.")
            ]
            description = "Hydra's own settings: " + ", ".join(_code(c) for c in children)
        rows.append([_code(key), value, description])
    out += _table(["key", "value", "description"], rows)
    return "\n".join(out).rstrip() + "\n"


# --- results.json ----------------------------------------------------------------------------


def _docstring_attributes(docstring: str) -> tuple[str, dict[str, str]]:
    """A class docstring's summary and its per-field text (the ``Attributes`` section)."""
    summary = docstring.split("\n\n", 1)[0]
    described: dict[str, str] = {}
    lines = docstring.splitlines()
    start = next((i for i, t in enumerate(lines) if re.match(r"Attributes\b.*:$", t.strip())), None)
    if start is None:
        return summary, described
    current = None
    base = None
    for line in lines[start + 1 :]:
        if not line.strip():
            current = None
            continue
        indent = len(line) - len(line.lstrip())
        base = indent if base is None else base
        match = re.match(r"(\w+)(?: \([^)]*\))?: (.*)$", line.strip())
        if indent == base and match:
            current = match.group(1)
            described[current] = match.group(2)
        elif indent > base and current:
            described[current] += " " + line.strip()
        elif indent < base:
            break
    return summary, described


def results_fields_markdown() -> str:
    """Every field of ``RunRecord`` (results.json), with its type and description, as markdown."""
    record = _import("gelora.record")
    source_fields, docstring = class_fields_source(SRC / "gelora" / "record.py", "RunRecord")
    by_name = {f.name: f for f in source_fields}
    summary, described = _docstring_attributes(docstring)
    rows = []
    for field in dataclasses.fields(record.RunRecord):
        source = by_name.get(field.name)
        description = described.get(field.name) or (source.trailing if source else "")
        annotation = source.annotation if source else str(field.type)
        required = (
            field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        )
        type_text = _code(annotation) + (" (always)" if required else "")
        rows.append([_code(field.name), type_text, _cell(description)])
    intro = (
        f"`RunRecord` (`gelora.record`): {' '.join(summary.split())} Generated from the "
        "dataclass, in the order of the file; a field without a description is self-explanatory "
        "(its name says it)."
    )
    return "\n".join([intro, "", *_table(["field", "type", "description"], rows)])


# --- files copied into the site --------------------------------------------------------------


def result_files() -> list[str]:
    """The committed results to show in the site, relative to experiments/results/: every .md and
    .png, and every .json under 200 kB (only what git tracks; every file without git)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--", "."],
            cwd=RESULTS,
            capture_output=True,
            check=True,
            text=True,
        ).stdout.split("\0")
        paths = [RESULTS / p for p in listed if p]
    except (OSError, subprocess.CalledProcessError):
        paths = [p for p in RESULTS.rglob("*") if p.is_file()]
    chosen = []
    for path in paths:
        if not path.is_file():  # committed, then deleted in the checkout
            continue
        if path.suffix in RESULT_SUFFIXES or (
            path.suffix == ".json" and path.stat().st_size < MAX_JSON_BYTES
        ):
            chosen.append(path.relative_to(RESULTS).as_posix())
    return sorted(chosen)


def _heading_line(lines: list[str]) -> int | None:
    """The index of the page's title heading: its first non-blank line, when that is a level-1
    ATX heading (``# Title``). mkdocs titles a page from an h1 only when the page opens with it;
    an h1 further down is a section."""
    index = next((i for i, line in enumerate(lines) if line.strip()), None)
    return index if index is not None and lines[index].startswith("# ") else None


def first_heading(markdown: str) -> str | None:
    """A page's title as written: the text of the level-1 heading it opens with, or None."""
    lines = markdown.splitlines()
    index = _heading_line(lines)
    return None if index is None else lines[index][2:].strip().rstrip("#").strip()


def retitle(markdown: str, title: str) -> str:
    """``markdown`` under the heading ``# title``, in place of the heading it opens with if any."""
    lines = markdown.split("\n")
    index = _heading_line(lines)
    if index is not None:
        del lines[index]
    return f"# {title}\n\n" + "\n".join(lines).lstrip("\n")


def results_page_title(src_uri: str, markdown: str) -> str | None:
    """The title to give a copied results page, or None when its own first heading serves.

    ``gelora-table`` writes ``table.md`` opening with the table, not a heading, which the site
    would title "Table" from the file name, like every other table of every sweep; such a page,
    or one whose heading is literally "Table", is titled by its folder under results/:
    ``results/table_cpu2/versus_shuffled/table.md`` -> "Table: table_cpu2/versus_shuffled".
    """
    heading = first_heading(markdown)
    if heading is not None and heading.strip().lower() != "table":
        return None
    inside = posixpath.relpath(src_uri, "results")
    folder, name = posixpath.split(inside)
    stem = posixpath.splitext(name)[0].replace("_", " ").replace("-", " ")
    kind = stem[:1].upper() + stem[1:]
    return f"{kind}: {folder}" if folder else f"{kind} (results)"


def project_urls(pyproject: Path | None = None) -> dict[str, str]:
    """pyproject.toml's ``[project.urls]`` (name -> address), read without tomllib (which Python
    3.10 lacks); {} without the table."""
    pyproject = pyproject or PYPROJECT
    text = pyproject.read_text() if pyproject.is_file() else ""
    if "[project.urls]" not in text:
        return {}
    section = text.split("[project.urls]", 1)[1].split("\n[", 1)[0]
    found = re.findall(r'^\s*"?([\w .-]+?)"?\s*=\s*"([^"]+)"', section, flags=re.MULTILINE)
    return {name.strip(): url for name, url in found}


def repository_url(urls: dict[str, str]) -> str | None:
    """The project's repository address: ``Repository``, else ``Source``, else ``Homepage``
    (names compared without case)."""
    by_name = {name.lower(): url for name, url in urls.items()}
    return next((by_name[k] for k in ("repository", "source", "homepage") if k in by_name), None)


def _repo_origin(src_uri: str) -> str | None:
    """Where a copied page lives in the repository, or None for a page of docs/."""
    if src_uri.startswith("results/"):
        return "experiments/" + src_uri
    return ROOT_PAGES.get(src_uri)


_LINK = re.compile(
    r"(?P<bang>!?)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)(?P<title>\s+\"[^\"]*\")?\)"
)
_FENCE = re.compile(r"^\s*(```|~~~)")


def rewrite_links(markdown: str, src_uri: str, origin: str, site_paths: set[str]) -> str:
    """A copied page's relative links to what the site does not hold, as plain code text naming
    the repository file (``src/gelora/record.py``); a link to a folder holding a README.md in the
    site goes to that README."""
    here = posixpath.dirname(src_uri)
    origin_dir = posixpath.dirname(origin)

    def replace(match: re.Match) -> str:
        target = match.group("target")
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            return match.group(0)
        path, _, anchor = target.partition("#")
        resolved = posixpath.normpath(posixpath.join(here, path)) if path else src_uri
        if resolved in site_paths:
            return match.group(0)
        for index in ("README.md", "index.md"):
            inside = posixpath.join(resolved, index)
            if inside in site_paths:
                relative = posixpath.relpath(inside, here or ".")
                new = relative + (f"#{anchor}" if anchor else "")
                return match.group(0).replace(f"({target}", f"({new}", 1)
        repo_path = posixpath.normpath(posixpath.join(origin_dir, path))
        if path.endswith("/") and not repo_path.endswith("/"):
            repo_path += "/"
        text = match.group("text").strip()
        if match.group("bang"):
            return f"{text} ({_code(repo_path)})" if text else _code(repo_path)
        if not text or text.strip("`") in (path, repo_path, target):
            return _code(repo_path)
        return f"{text} ({_code(repo_path)})"

    out = []
    fenced = False
    for line in markdown.split("\n"):
        if _FENCE.match(line):
            fenced = not fenced
            out.append(line)
            continue
        if fenced:
            out.append(line)
            continue
        spans = [m.span() for m in _CODE_SPAN.finditer(line)]

        def outside_code(match: re.Match, spans: list = spans) -> str:
            if any(start < match.start() < end for start, end in spans):
                return match.group(0)  # `[text](target)` written as code
            return replace(match)

        out.append(_LINK.sub(outside_code, line))
    return "\n".join(out)


# --- mkdocs events ---------------------------------------------------------------------------

_generated: dict[str, str] = {}


def on_config(config: Any) -> Any:
    """The header's repository link from pyproject.toml, unless mkdocs.yml sets ``repo_url``."""
    url = repository_url(project_urls())
    if url and not config.repo_url:
        config.repo_url = url
        if not config.repo_name:
            config.repo_name = "/".join(url.rstrip("/").split("/")[-2:])
    return config


def on_pre_build(config: Any) -> None:
    _generated.clear()  # mkdocs serve: a rebuild reads the code again


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File, InclusionLevel

    taken = {f.dest_uri for f in files}
    wanted = [("results/" + rel, RESULTS / rel) for rel in result_files()]
    wanted += [(uri, REPO / name) for uri, name in ROOT_PAGES.items() if (REPO / name).is_file()]
    for src_uri, path in wanted:
        if files.get_file_from_path(src_uri) is not None:
            continue  # docs/ holds a page of that name: it wins
        # the root pages are in the nav; results pages are reached by links
        inclusion = InclusionLevel.INCLUDED if src_uri in ROOT_PAGES else InclusionLevel.NOT_IN_NAV
        file = File.generated(config, src_uri, abs_src_path=str(path), inclusion=inclusion)
        if file.dest_uri in taken:
            continue
        taken.add(file.dest_uri)
        files.append(file)
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if CONFIG_MARKER in markdown:
        if "config" not in _generated:
            _generated["config"] = config_reference_markdown()
        markdown = markdown.replace(CONFIG_MARKER, _generated["config"])
    if RESULTS_MARKER in markdown:
        if "results" not in _generated:
            _generated["results"] = results_fields_markdown()
        markdown = markdown.replace(RESULTS_MARKER, _generated["results"])
    origin = _repo_origin(page.file.src_uri)
    if origin is not None:
        site_paths = {f.src_uri for f in files}
        markdown = rewrite_links(markdown, page.file.src_uri, origin, site_paths)
    if page.file.src_uri.startswith("results/"):
        title = results_page_title(page.file.src_uri, markdown)
        if title is not None:
            markdown = retitle(markdown, title)
    return markdown
