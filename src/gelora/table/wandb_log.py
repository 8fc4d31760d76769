"""``gelora-table --wandb``: the table a sweep's folder got, logged as one wandb run in the
sweep's group, beside its jobs' runs (docs/dashboards.md).

The run is read back from what ``gelora-table`` wrote into its ``--out`` folder, so it holds
exactly that: every markdown table of ``table.md`` (the main table, the paired differences, the
plans, the cost) as a wandb Table under ``tables/<its heading>``, every CSV (``runs.csv``,
``paired.csv``, ...) under ``csv/<name>``, every figure under ``figures/<name>``, and
``table.md`` and ``table.tex`` as the run's files. It is offline, as the jobs' runs are
(``conf/logger/wandb.yaml``), unless ``WANDB_MODE`` says otherwise, and lands in
``<out>/wandb/offline-run-*``; its project and entity are the jobs' own.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gelora.sweep_jobs import job_folders, wandb_group

DEFAULT_PROJECT = "gelora"  # conf/logger/wandb.yaml's
JOB_TYPE = "table"  # beside the jobs' job types, which are their table rows


@dataclass(frozen=True)
class MarkdownTable:
    """One table of a markdown text: the heading above it, its columns and its rows."""

    heading: str
    columns: list[str]
    rows: list[list[Any]]


def markdown_tables(text: str) -> list[MarkdownTable]:
    """Every pipe table of ``text`` (``| a | b |`` lines, the second a ``|---|`` rule), with the
    nearest ``#`` heading above it (``table`` before any heading); cells that read as numbers
    are numbers, so that the dashboard sorts and plots them."""
    tables, heading, block = [], "table", []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            block.append([cell.strip() for cell in line.strip().strip("|").split("|")])
            continue
        if len(block) > 2 and set("".join(block[1])) <= set("-: "):
            rows = [[_number(cell) for cell in row] for row in block[2:]]
            tables.append(MarkdownTable(heading, block[0], rows))
        block = []
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
    return tables


def _number(text: str) -> Any:
    """``"0.81"`` as 0.81, ``"12"`` as 12, an empty cell as None; anything else as it is."""
    if text == "":
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if re.fullmatch(r"[+-]?\d+", text) else number


def slug(text: str) -> str:
    """A wandb key made of a heading: ``Paired differences versus lora`` ->
    ``paired_differences_versus_lora``."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "table"


def csv_table(path: Path) -> tuple[list[str], list[list[Any]]]:
    """A CSV's header and rows, numbers as numbers."""
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return [], []
    return rows[0], [[_number(cell) for cell in row] for row in rows[1:]]


def job_logger_settings(sweep_dir: Path) -> dict[str, Any]:
    """The ``logger.wandb`` settings a job of the sweep recorded (its ``results.json``'s
    resolved config): its project and entity; ``{}`` when no job logged to wandb."""
    for job in job_folders(sweep_dir):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            config = json.loads((job / "results.json").read_text()).get("config") or {}
            settings = (config.get("logger") or {}).get("wandb")
            if settings:
                return settings
    return {}


@contextlib.contextmanager
def _data_dir(out: Path) -> Iterator[None]:
    """wandb stages logged tables and images under ``WANDB_DATA_DIR`` (by default in the home,
    never cleaned): in ``<out>/wandb/data`` for this run, as for the jobs' runs
    (``gelora.training.loggers``); a value the user set is kept."""
    if "WANDB_DATA_DIR" in os.environ:
        yield
        return
    os.environ["WANDB_DATA_DIR"] = str(out / "wandb" / "data")
    try:
        yield
    finally:
        os.environ.pop("WANDB_DATA_DIR", None)


def table_payload(out: Path, figures: bool) -> dict[str, Any]:
    """What the run logs, by key: ``tables/...``, ``csv/...`` and (``figures``: this table drew
    them) ``figures/...``."""
    import wandb

    payload: dict[str, Any] = {}
    markdown = out / "table.md"
    for table in markdown_tables(markdown.read_text()) if markdown.is_file() else []:
        key, n = f"tables/{slug(table.heading)}", 2
        while key in payload:  # a second table under one heading (the per-task differences)
            key, n = f"tables/{slug(table.heading)}_{n}", n + 1
        payload[key] = wandb.Table(columns=table.columns, data=table.rows, allow_mixed_types=True)
    for path in sorted(out.glob("*.csv")):
        columns, rows = csv_table(path)
        if columns:
            # a column may hold numbers and words ("nan", a verdict) in one CSV: wandb would
            # otherwise fix a column's type from its first row and refuse the next
            payload[f"csv/{path.stem}"] = wandb.Table(
                columns=columns, data=rows, allow_mixed_types=True
            )
    for path in sorted(out.glob("*.png")) if figures else []:
        payload[f"figures/{path.stem}"] = wandb.Image(str(path))
    return payload


def log_table_run(sweep_dir: Path, out: Path, figures: bool) -> Path | None:
    """One wandb run holding ``out``'s tables, CSVs and (``figures``) figures, in the group of
    ``sweep_dir``'s jobs (``gelora.sweep_jobs.wandb_group``), job type ``table``; the run's
    folder, or None under ``WANDB_MODE=disabled``."""
    import wandb
    from hydra.types import RunMode

    settings = job_logger_settings(sweep_dir)
    with _data_dir(out):
        run = wandb.init(
            project=settings.get("project") or DEFAULT_PROJECT,
            entity=settings.get("entity"),
            group=wandb_group(RunMode.MULTIRUN, str(sweep_dir), ""),
            job_type=JOB_TYPE,
            name=f"table-{sweep_dir.name}",
            dir=str(out),
            mode=os.environ.get("WANDB_MODE") or "offline",  # the user's, read now
            config={"sweep_dir": str(sweep_dir)},
            settings=wandb.Settings(silent=True),
        )
        if run.settings.mode == "disabled":  # WANDB_MODE=disabled: no run to write
            run.finish()
            return None
        try:
            run.log(table_payload(out, figures))
            for name in ("table.md", "table.tex"):  # copies: a later table rewrites out's
                if (out / name).is_file():
                    shutil.copyfile(out / name, Path(run.dir) / name)
                    run.save(str(Path(run.dir) / name), base_path=run.dir, policy="now")
            folder = Path(run.settings.sync_dir)
        finally:
            run.finish()
    return folder
