"""Run a sweep and commit every finished job as it lands, so an interrupted sweep loses nothing.

    python experiments/sweep_commit.py experiments/results/table_cpu/lr_grid -- \
        gelora-train -m experiment=table_cpu_lr parallel=per_core

Every ``--every`` seconds (and once at the end) each job directory under the sweep directory
that holds a completed ``results.json`` is committed to git: the record (without its ``config``
copy, which ``.hydra/config.yaml`` already holds, and with no absolute path of this machine:
``relativize_records.py``) and ``.hydra/*.yaml`` (what ``gelora-table``
reads). Checkpoints, adapters and logs stay out of git. Rerunning the same command on a fresh
clone resumes: the sweep skips jobs whose directory holds a completed record.
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import time
from pathlib import Path

from gelora.atomic import atomic_file, write_json_atomic
from gelora.record import RunRecord
from gelora.run_folder import portable_hydra, superseded


def completed_jobs(sweep_dir: Path) -> list[Path]:
    """Job directories (with ``.hydra/``) whose ``results.json`` says ``completed``."""
    jobs = []
    for results in sorted(sweep_dir.rglob("results.json")):
        job = results.parent
        if not (job / ".hydra").is_dir() or superseded(job, sweep_dir):
            continue
        try:
            if RunRecord.read(results).status == "completed":
                jobs.append(job)
        except (OSError, ValueError):
            continue  # being written, or broken: the table reports it, git does not need it
    return jobs


def make_portable(hydra_file: Path) -> bool:
    """Rewrite a ``hydra.yaml`` or ``multirun.yaml`` without this machine's folders
    (``gelora.run_folder.portable_hydra``); returns whether it changed."""
    from omegaconf import OmegaConf

    node = OmegaConf.to_container(OmegaConf.load(hydra_file), resolve=False)
    before = json.dumps(node, sort_keys=True)
    portable_hydra(node.get("hydra") or {})
    if json.dumps(node, sort_keys=True) == before:
        return False
    with atomic_file(hydra_file) as tmp:
        OmegaConf.save(OmegaConf.create(node), tmp)
    return True


@functools.cache
def _relativize_records():
    """``relativize`` of ``experiments/relativize_records.py``, the script beside this one."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "relativize_records", Path(__file__).with_name("relativize_records.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.relativize


def strip_config(results: Path) -> None:
    data = json.loads(results.read_text())
    if data.get("config") is not None:
        data["config"] = None
        write_json_atomic(results, data)


def _git(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    for _ in range(20):  # another git command may hold the index lock for a moment
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
        if "index.lock" not in proc.stderr:
            return proc
        time.sleep(3)
    return proc


def commit_completed(sweep_dir: Path, label: str) -> int:
    """Commit the completed jobs not yet committed; returns how many are committed in all."""
    jobs = completed_jobs(sweep_dir)
    if not jobs:
        return 0
    relativize = _relativize_records()
    paths: list[str] = []
    for job in jobs:
        strip_config(job / "results.json")
        relativize(job / "results.json")  # no folder of this machine in a committed record
        paths += [str(job / "results.json"), *map(str, sorted((job / ".hydra").glob("*.yaml")))]
    if (sweep_dir / "multirun.yaml").exists():
        make_portable(sweep_dir / "multirun.yaml")  # Hydra's, with this machine's folders
        paths.append(str(sweep_dir / "multirun.yaml"))
    root = Path(_git("rev-parse", "--show-toplevel", cwd=sweep_dir).stdout.strip())
    _git("add", "-f", "--", *paths, cwd=root)
    staged = _git("diff", "--cached", "--name-only", "--", *paths, cwd=root).stdout.split()
    if staged:
        message = f"{label}: {len(jobs)} jobs completed (results as the sweep goes)"
        proc = _git("commit", "-q", "-m", message, "--", *paths, cwd=root)
        if proc.returncode != 0:
            print(f"sweep_commit: git commit failed: {proc.stderr.strip()}", file=sys.stderr)
    return len(jobs)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print("usage: sweep_commit.py SWEEP_DIR [--every S] -- COMMAND ...", file=sys.stderr)
        return 2
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="sweep_commit.py", description=__doc__.split("\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="the sweep's hydra.sweep.dir")
    parser.add_argument("--every", type=float, default=300, help="seconds between commits")
    args = parser.parse_args(argv[:split])
    command = argv[split + 1 :]
    label = f"sweep {args.sweep_dir.as_posix()}"
    process = subprocess.Popen(command)
    last_commit = time.monotonic()
    try:
        while process.poll() is None:
            time.sleep(5)
            if time.monotonic() - last_commit >= args.every:
                commit_completed(args.sweep_dir, label)
                last_commit = time.monotonic()
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait()
        done = commit_completed(args.sweep_dir, label) if args.sweep_dir.exists() else 0
        print(f"sweep_commit: {done} completed jobs committed under {args.sweep_dir}")
    return process.returncode


if __name__ == "__main__":
    raise SystemExit(main())
