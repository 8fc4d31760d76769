"""Rewrite committed Hydra files so that they hold no folder of the machine that ran them.

    python experiments/portable_hydra_files.py [--check] [ROOT ...]   # default: experiments/results

Hydra's ``.hydra/hydra.yaml`` and a sweep's ``multirun.yaml`` record the working folder, the
run folder and the config folder as absolute paths. Each becomes what
``gelora.run_folder.portable_hydra`` makes of it (``runtime.output_dir: .``, ``runtime.cwd`` and
the config sources' paths null); nothing else changes. gelora writes ``.hydra/`` that way itself
now, and ``experiments/sweep_commit.py`` rewrites ``multirun.yaml`` before committing it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sweep_commit import make_portable

RESULTS = Path(__file__).resolve().parent / "results"


def hydra_files(roots: list[Path]) -> list[Path]:
    return sorted(
        path
        for root in roots
        for pattern in ("hydra.yaml", "multirun.yaml")
        for path in root.rglob(pattern)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("roots", nargs="*", type=Path, default=[RESULTS])
    parser.add_argument("--check", action="store_true", help="list, change nothing; exit 1 if any")
    args = parser.parse_args(argv)
    changed = []
    for path in hydra_files(args.roots):
        if args.check:
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                copy = Path(tmp) / path.name
                copy.write_bytes(path.read_bytes())
                if make_portable(copy):
                    changed.append(path)
        elif make_portable(path):
            changed.append(path)
    verb = "would change" if args.check else "changed"
    print(f"{len(changed)} Hydra files {verb}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
