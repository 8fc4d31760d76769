"""The arena's leaderboard page, generated from a table's committed records (issue 46).

Reads what ``gelora-table`` wrote into a results folder and recomputes nothing: the total effect
of each allocator against the reference (``paired.csv``: task-level mean difference, its 95%
interval, MDE and verdict, as ``gelora.table.paired`` computed them), the placement effect
against its own shuffle (``placement_<row>.csv``, as ``gelora.table.placement`` computed them),
the budget, tasks and seeds (``runs.csv``), and, from each run's ``results.json``, the commit
that made it (``environment.gelora_commit``) and the plans over batch draws where the allocator
recorded them (``method_summary.plan_draws``). A row is an allocator with a placement file.

    python -m gelora.table.leaderboard experiments/results/arena_cpu docs/leaderboard.md \\
        --title "..." --note "..."
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gelora.atomic import write_text_atomic
from gelora.record import read_results


@dataclass(frozen=True)
class Effect:
    """One paired comparison as ``gelora-table`` wrote it (a row of its CSV)."""

    mean: float
    low: float
    high: float
    mde: float
    verdict: str

    @classmethod
    def from_row(cls, row: dict[str, str]) -> Effect:
        number = lambda key: float(row[f"task_level_{key}"])  # noqa: E731
        return cls(number("mean"), number("ci95_low"), number("ci95_high"), number("mde"),
                   row["verdict"])  # fmt: skip

    def text(self) -> str:
        """``-0.06 [-0.68, +0.56], MDE 0.81``: the mean difference, its interval and MDE."""
        return f"{self.mean:+.2f} [{self.low:+.2f}, {self.high:+.2f}], MDE {self.mde:.2f}"


@dataclass(frozen=True)
class Entry:
    """One allocator's line of the leaderboard."""

    row: str
    budget: str
    total: Effect | None
    placement: Effect | None
    tasks: int
    seeds: int
    stability: str
    source: str


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _record(root: Path, run_dir: str) -> dict:
    path = root / run_dir / "results.json"
    return read_results(path) if path.is_file() else {}


def _stability(records: Sequence[dict]) -> str:
    """Distinct plans over the batch draws where the runs recorded them, else that they did not."""
    drawn = [(r.get("method_summary") or {}).get("plan_draws") for r in records]
    counts = sorted({d["distinct_plans"] for d in drawn if d})
    if not counts:
        return "not recorded (no plans over batch draws)"
    shown = f"{counts[0]}-{counts[-1]}" if len(counts) > 1 else f"{counts[0]}"
    return f"{shown} distinct plans over {len(drawn[0]['ranks'])} batch draws"


def _source(root: Path, runs: Sequence[dict[str, str]], records: Sequence[dict]) -> str:
    folders = sorted({str(Path(r["run_dir"]).parent) for r in runs})
    commits = sorted({(r.get("environment") or {}).get("gelora_commit", "")[:7] for r in records})
    made = ", ".join(f"`{c}`" for c in commits if c)
    where = ", ".join(f"`{f}`" for f in folders)
    return f"{where} at {made}" if made and "" not in commits else f"{where} (commit not recorded)"


def entry(
    folder: Path, row: str, root: Path, totals: dict[str, dict[str, str]], all_runs: list[dict]
) -> Entry:
    """``row``'s leaderboard line from the records in ``folder`` (run folders under ``root``);
    ``totals``: ``paired.csv``'s rows by name, ``all_runs``: ``runs.csv``'s rows."""
    placement = _csv(folder / f"placement_{row}.csv")[0]
    runs = [r for r in all_runs if r["method"] == row and r["status"] == "completed"]
    records = [_record(root, r["run_dir"]) for r in runs]
    budgets = sorted({int(r["adapter_params"]) for r in runs})
    return Entry(
        row=row,
        budget=f"{budgets[0]:,}" + (f" to {budgets[-1]:,}" if len(budgets) > 1 else ""),
        total=Effect.from_row(totals[row]) if row in totals else None,
        placement=Effect.from_row(placement),
        tasks=len({r["task"] for r in runs}),
        seeds=len({r["seed"] for r in runs}),
        stability=_stability(records),
        source=_source(root, runs, records),
    )


def entries(folder: Path, root: Path) -> list[Entry]:
    """One entry per allocator with a placement file in ``folder``, by name."""
    for name in ("paired.csv", "runs.csv"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name}: not found (gelora-table --out writes it)")
    totals = {r["row"]: r for r in _csv(folder / "paired.csv")}
    runs = _csv(folder / "runs.csv")
    rows = sorted(p.stem.removeprefix("placement_") for p in folder.glob("placement_*.csv"))
    return [entry(folder, row, root, totals, runs) for row in rows]


def _cell(effect: Effect | None) -> str:
    return f"{effect.text()}: {effect.verdict}" if effect else "not in the records"


def headline(items: Sequence[Entry], reference: str) -> str:
    """One sentence saying plainly whether anything was detected (and where equivalence was
    shown, which is not a detected difference)."""
    effects = [(item.row, e) for item in items for e in (item.total, item.placement) if e]
    found = sorted({row for row, e in effects if _detected(e)})
    if found:
        return f"A difference is detected for: {', '.join(f'`{r}`' for r in found)}."
    text = (f"**Nothing is detectable**: no allocator is ahead of or behind {reference} or its "
            "own shuffle at these tasks' power (each verdict gives its MDE).")  # fmt: skip
    shown = [
        f"`{item.row}` against {what}"
        for item in items
        for what, e in ((reference, item.total), ("its own shuffle", item.placement))
        if e and e.verdict.startswith("equivalent")
    ]
    if shown:
        text += " Equivalence within the margin is shown only for " + "; ".join(shown) + "."
    return text


def _detected(effect: Effect) -> bool:
    return effect.verdict.startswith(("ahead", "behind"))


def render(items: Sequence[Entry], reference: str, title: str, note: str = "") -> str:
    """The page: a title, a note, the headline and one row per allocator."""
    lines = [f"# {title}", ""]
    lines += [note, ""] if note else []
    lines += [headline(items, reference), ""]
    lines += [
        f"| allocator | adapter parameters | total effect vs {reference} | placement effect vs "
        "its own shuffle | tasks | seeds | plan stability | records |",
        "|---|---:|---|---|---:|---:|---|---|",
    ]
    for item in items:
        lines.append(
            f"| `{item.row}` | {item.budget} | {_cell(item.total)} | {_cell(item.placement)} | "
            f"{item.tasks} | {item.seeds} | {item.stability} | {item.source} |"
        )
    lines += [
        "",
        "Each effect: the mean difference in points (x100) over the task means, its 95% interval "
        "(Student's t over the tasks), the minimum detectable effect (80% power) and "
        "`gelora-table`'s verdict, copied from the records' `paired.csv` and "
        "`placement_<row>.csv`; nothing is recomputed. Generated by "
        "`python -m gelora.table.leaderboard`.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gelora.table.leaderboard", description=__doc__)
    parser.add_argument("results", type=Path, help="a results folder gelora-table wrote")
    parser.add_argument("out", type=Path, help="the markdown page to write")
    parser.add_argument("--reference", default="lora", help="the row paired.csv is against")
    parser.add_argument("--title", default="Leaderboard")
    parser.add_argument("--note", default="", help="a paragraph under the title")
    parser.add_argument("--root", type=Path, default=Path("."), help="where run_dir paths start")
    args = parser.parse_args(argv)
    try:
        items = entries(args.results, args.root)
    except FileNotFoundError as error:
        parser.error(str(error))
    page = render(items, args.reference, args.title, args.note)
    write_text_atomic(args.out, page)


if __name__ == "__main__":
    main()
