"""Rows of a user's table file (CSV, TSV, JSON lines, JSON or Parquet) as plain dicts.

Shared by ``task=from_files`` and the local-copy path of GLUE. CSV and TSV cells stay strings
(no type guessing here: what a label means is ``gelora.data.from_files.label_key``'s rule); JSON
keeps its own types.

A file is read right or refused with one ``ValueError`` naming it (and the line or row where
there is one): text files must be UTF-8 (a byte-order mark is allowed), a binary file under a
text name is named for what it looks like (Parquet, ZIP, gzip, UTF-16), a header or a JSON object
may not name a column twice, a CSV/TSV row may not have more fields than its header (an unquoted
comma or tab in a text), and a field may be up to ``FIELD_LIMIT`` characters long.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
FIELD_LIMIT = 10_000_000  # characters of one CSV/TSV field (Python's default is 131,072)
# What a binary file under a text name is, by its first bytes.
MAGIC = {
    b"PAR1": "a Parquet file",
    b"PK\x03\x04": "a ZIP archive (an .xlsx workbook?)",
    b"\x1f\x8b": "a gzip archive",
    b"\xff\xfe": "UTF-16 text",
    b"\xfe\xff": "UTF-16 text",
}


def _text(path: Path) -> str:
    """The file's text, or a ``ValueError`` saying what it is instead and where."""
    data = path.read_bytes()
    for magic, what in MAGIC.items():
        if data.startswith(magic):
            raise ValueError(
                f"{path}: this is {what} (it starts with {magic!r}), not {path.suffix} text; "
                + ("rename it to .parquet" if magic == b"PAR1" else "save it as UTF-8 text")
            )
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise ValueError(f"{path}: binary, not text (a NUL byte on line {line})")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ValueError(
            f"{path}, line {line}: not UTF-8 (byte 0x{data[error.start]:02x} at offset "
            f"{error.start}); save the file as UTF-8"
        ) from None


def _delimited(path: Path, delimiter: str) -> list[dict[str, Any]]:
    csv.field_size_limit(FIELD_LIMIT)
    reader = csv.reader(io.StringIO(_text(path), newline=""), delimiter=delimiter)
    separator = "tab" if delimiter == "\t" else "comma"
    rows: list[dict[str, Any]] = []
    header: list[str] | None = None
    try:
        for fields in reader:
            if header is None:
                header = fields
                for i, name in enumerate(header):
                    if name in header[:i]:
                        raise ValueError(
                            f"{path}: column {name!r} appears twice in the header (columns "
                            f"{header.index(name) + 1} and {i + 1}); rename one"
                        )
                continue
            if not fields:
                continue  # a blank line
            if any(field.strip() for field in fields[len(header) :]):
                raise ValueError(
                    f"{path}, row {len(rows) + 1} (line {reader.line_num}): {len(fields)} fields, "
                    f"the header has {len(header)} (an unquoted {separator} in a text? quote it)"
                )
            rows.append(dict(zip(header, fields, strict=False)))
    except csv.Error as error:
        reason = str(error)
        if "field larger than field limit" in reason:
            reason = f"a field is longer than {FIELD_LIMIT:,} characters (the CSV field limit)"
        raise ValueError(
            f"{path}, row {len(rows) + 1} (line {reader.line_num}): {reason}"
        ) from None
    return rows


def _no_repeated_keys(path: Path, line: int | None):
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                where = f"{path}, line {line}" if line is not None else str(path)
                raise ValueError(f"{where}: key {key!r} appears twice in one object")
            seen[key] = value
        return seen

    return hook


def _json(path: Path, suffix: str) -> list[dict[str, Any]]:
    text = _text(path)
    if suffix == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text, object_pairs_hook=_no_repeated_keys(path, None))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}, line {error.lineno}: not JSON ({error.msg})") from None
        numbered = list(enumerate(rows, start=1))
        where = "item"
    else:
        numbered = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    row = json.loads(line, object_pairs_hook=_no_repeated_keys(path, number))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}, line {number}: not JSON ({error})") from error
                numbered.append((number, row))
        where = "line"
    for number, row in numbered:
        if not isinstance(row, dict):
            raise ValueError(
                f"{path}, {where} {number}: a JSON {type(row).__name__}, not an object of columns"
            )
    return [row for _, row in numbered]


def _parquet(path: Path) -> list[dict[str, Any]]:
    with open(path, "rb") as handle:
        if handle.read(4) != b"PAR1":
            raise ValueError(f"{path}: not a Parquet file (it does not start with b'PAR1')")
    try:
        import pandas as pd

        frame = pd.read_parquet(path)
    except ImportError as error:  # pandas, or the engine it reads Parquet with (pyarrow)
        raise ValueError(
            f"{path}: reading Parquet needs pandas and pyarrow, not installed here "
            f"({error.name or error}): python -m pip install 'gelora[parquet]'"
        ) from error
    repeated = frame.columns[frame.columns.duplicated()].tolist()
    if repeated:
        raise ValueError(f"{path}: column {repeated[0]!r} appears twice; rename one")
    return frame.to_dict("records")


def read_table(path: str | Path) -> list[dict[str, Any]]:
    """All rows of ``path``; the format comes from its suffix.

    Raises:
        FileNotFoundError: no such file (the message names it).
        ValueError: an unsupported suffix, or a file that cannot be read right (the module's
            docstring lists them), in one line naming the file and the line or row.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return _delimited(path, "\t" if suffix == ".tsv" else ",")
    if suffix in (".jsonl", ".json"):
        return _json(path, suffix)
    if suffix == ".parquet":
        return _parquet(path)
    raise ValueError(f"{path}: unsupported file type {suffix!r}; use one of {TABLE_SUFFIXES}")


def column_names(rows: list[dict[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for row in rows[:100]:
        names |= dict.fromkeys(row)
    return list(names)


def require_columns(rows: list[dict[str, Any]], columns: list[str], path: str | Path) -> None:
    """Raise ``ValueError`` naming the first column that ``path`` lacks, and those it has."""
    if not rows:
        raise ValueError(f"{path} has no rows")
    present = column_names(rows)
    for column in columns:
        if column not in present:
            raise ValueError(
                f"{path} has no column {column!r}; its columns are: {', '.join(present)}"
            )
