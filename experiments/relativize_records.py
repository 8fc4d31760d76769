"""Rewrite committed run records so that they hold no absolute path of the machine that ran them.

    python experiments/relativize_records.py [ROOT ...]        # default: experiments/results
    python experiments/relativize_records.py --check [ROOT ...] # list what would change, exit 1

A record (``results.json``, or ``<name>.results.json``) copied into ``experiments/results`` kept
the paths its run wrote: ``adapter_dir``, ``benchmarks.files``, ``resumed_from.checkpoint``,
``config.paths.output_dir``, ``config.logger.*.save_dir``, ``id_profile_cache.path``. Each
absolute path (a string starting with ``/``, ``~/`` or a drive letter) becomes:

- under ``experiments/results/`` of any checkout (``/work/wt-sweep/experiments/results/...``):
  that file of this repository, relative to the folder the record is in (a record copied from
  another job by ``reuse_table_cpu_runs.py`` names its source's adapter, ``../../lr_grid/...``);
- else under the folder the run wrote into (``config.paths.output_dir``; else the folder of
  ``adapter_dir``, of ``resumed_from.checkpoint``'s ``checkpoints/``, or of a benchmark file):
  relative to that run folder (``adapter``, ``checkpoints/last.ckpt``, ``.`` for the folder);
- else (a cache of the old machine, ``/root/.cache/gelora/...``): ``null``; the record keeps
  what identifies it (``id_profile_cache.key``).

Nothing else changes: every other value, and the file's layout (``json.dumps(indent=2)``, as
``RunRecord.write`` writes it), stay as they were. Rerunning it changes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
MARKER = "/experiments/results/"
ABSOLUTE = re.compile(r"^(/|~/|[A-Za-z]:[\\/])")


def is_absolute(value: Any) -> bool:
    return isinstance(value, str) and bool(ABSOLUTE.match(value))


def records(roots: list[Path]) -> Iterator[Path]:
    for root in roots:
        for path in sorted(root.rglob("*results.json")):
            if path.name == "results.json" or path.name.endswith(".results.json"):
                yield path


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def run_folder(record: dict[str, Any]) -> PurePosixPath | None:
    """The folder the run wrote into, on the machine that ran it."""
    output_dir = _get(record, "config", "paths", "output_dir")
    if is_absolute(output_dir):
        return PurePosixPath(output_dir)
    adapter = record.get("adapter_dir")
    if is_absolute(adapter) and PurePosixPath(adapter).name == "adapter":
        return PurePosixPath(adapter).parent
    checkpoint = PurePosixPath(str(_get(record, "resumed_from", "checkpoint")))
    if is_absolute(str(checkpoint)) and checkpoint.parent.name == "checkpoints":
        return checkpoint.parent.parent
    files = _get(record, "benchmarks", "files")
    for value in (files or {}).values() if isinstance(files, dict) else ():
        if is_absolute(value):
            return PurePosixPath(value).parent
    return None


def relative(value: str, record_dir: Path, run_dir: PurePosixPath | None) -> str | None:
    """``value`` (an absolute path of the old machine) as the record should hold it."""
    if MARKER in value:
        here = RESULTS / value.split(MARKER, 1)[1]
        return Path(os.path.relpath(here, record_dir.resolve())).as_posix()
    path = PurePosixPath(value)
    if run_dir is not None and (path == run_dir or run_dir in path.parents):
        return path.relative_to(run_dir).as_posix()  # "." for the run folder itself
    return None


def rewrite(value: Any, record_dir: Path, run_dir: PurePosixPath | None, where: str, changes):
    if isinstance(value, dict):
        return {
            k: rewrite(v, record_dir, run_dir, f"{where}.{k}", changes) for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            rewrite(v, record_dir, run_dir, f"{where}[{i}]", changes) for i, v in enumerate(value)
        ]
    if is_absolute(value):
        new = relative(value, record_dir, run_dir)
        changes.append(f"{where.lstrip('.')}: {value} -> {new}")
        return new
    return value


def relativize(path: Path, write: bool = True) -> list[str]:
    """The changes that make ``path``'s record free of absolute paths; written when ``write``."""
    text = path.read_text()
    record = json.loads(text)
    changes: list[str] = []
    new = rewrite(record, path.parent, run_folder(record), "", changes)
    if changes and write:
        out = json.dumps(new, indent=2) + ("\n" if text.endswith("\n") else "")
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(out)
        tmp.replace(path)
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("roots", nargs="*", type=Path, default=[RESULTS])
    parser.add_argument("--check", action="store_true", help="list the changes, write nothing")
    args = parser.parse_args(argv)
    changed = 0
    for path in records(args.roots):
        changes = relativize(path, write=not args.check)
        if changes:
            changed += 1
            print(f"{path}:")
            print("\n".join(f"  {line}" for line in changes))
    verb = "would change" if args.check else "rewrote"
    print(f"{verb} {changed} record(s)", file=sys.stderr)
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
