"""Rows of a user's table file (CSV, TSV, JSON lines, JSON or Parquet) as plain dicts.

Shared by ``task=from_files`` and the local-copy path of GLUE. CSV and TSV cells stay strings
(no type guessing: a label ``01`` is not the number 1); JSON keeps its own types.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")


def read_table(path: str | Path) -> list[dict[str, Any]]:
    """All rows of ``path``; the format comes from its suffix.

    Raises:
        FileNotFoundError: no such file (the message names it).
        ValueError: an unsupported suffix, or a malformed JSON line (with its line number).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        with open(path, encoding="utf-8-sig", newline="") as handle:
            return list(csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ","))
    if suffix in (".jsonl", ".json"):
        text = path.read_text(encoding="utf-8-sig")
        if suffix == ".json" and text.lstrip().startswith("["):
            return list(json.loads(text))
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}, line {number}: not JSON ({error})") from error
        return rows
    if suffix == ".parquet":
        import pandas as pd

        return pd.read_parquet(path).to_dict("records")
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
