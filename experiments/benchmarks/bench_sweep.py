"""Benchmark: a small realistic sweep, and where its time goes outside training.

    python experiments/benchmarks/bench_sweep.py [--before REV] [--seeds 0 1] [--methods ...]

One grid (rotten_tomatoes x methods x seeds at the CPU table's per-job size, experiment=table_cpu:
today 2,400 training examples in one epoch of 300 steps, 1,000 validation and test, 64 tokens,
budget rank 2; bench_sweep.md was measured when it was 2,000 examples over two epochs), run as
one ``gelora-train -m`` process per configuration, in this order on the same machine:

1. ``before``: the code at ``--before`` (default: main when the issue was filed), checked out
   into a temporary worktree: every job estimates its own profile;
2. ``cold``: this code with an empty ID-profile cache;
3. ``warm``: this code again, every profile already cached (2 torch threads, jobs in turn);
4. ``warm, 2 jobs x 1 thread``: the joblib launcher, two jobs at a time, ``threads=1`` each.

For every job it reads ``results.json``'s timings: ``fit_s`` and ``test_s``, and the rest of the
job's run (task, model, ID profile, tokenisation, plan, adapter export). The time the sweep spent
outside every job's run (interpreter start, imports, Hydra) is shared evenly among its jobs.
Writes ``bench_sweep.json`` and ``bench_sweep.md`` next to this script (or to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def sweep(label: str, src: Path, work: Path, grid: list[str], extra: list[str], env: dict) -> dict:
    """Run one sweep in ``work`` with the package at ``src``; its wall time and every job."""
    sweep_id = label.replace(" ", "_").replace(",", "")
    command = [sys.executable, "-m", "gelora.train", "-m", f"sweep_id={sweep_id}", *grid, *extra]
    env = {**env, "PYTHONPATH": str(src)}
    print(f"[bench_sweep] {label}: {' '.join(command[3:])}", flush=True)
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{label} failed:\n{proc.stderr[-3000:]}")
    jobs = []
    for path in sorted((work / "multirun_outputs").glob(f"*/{sweep_id}/*/results.json")):
        record = json.loads(path.read_text())
        if record["status"] != "completed":
            raise RuntimeError(f"{label}: {path} is {record['status']}: {record.get('error')}")
        timings = record["timings"]
        cache = record.get("id_profile_cache") or {"outcome": "none (before)"}
        jobs.append(
            {
                "job": path.parent.name,
                "run_s": timings["total_s"],
                "fit_s": timings["fit_s"],
                "test_s": timings["test_s"],
                "id_estimation_s": timings.get("id_estimation_s"),
                "tokenize_s": timings.get("tokenize_s"),
                "id_profile": cache["outcome"],
                "score": record["metrics"][f"test/{record['metric']}"],
            }
        )
    startup = max(0.0, wall - sum(j["run_s"] for j in jobs)) if "1 thread" not in label else None
    for job in jobs:
        # In turn: the sweep's own overhead (start-up, imports, Hydra) is shared among its jobs.
        # In parallel (2 workers), each worker's start-up is not in any job's timings: it shows
        # in the sweep's wall time only.
        share = startup / len(jobs) if startup is not None else 0.0
        job["wall_s"] = job["run_s"] + share
        job["outside_s"] = job["wall_s"] - job["fit_s"] - job["test_s"]
        job["outside_share"] = job["outside_s"] / job["wall_s"]
    return {"label": label, "wall_s": wall, "jobs": jobs}


def worktree(revision: str, where: Path) -> Path:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), revision],
        check=True,
        capture_output=True,
    )
    return where


def revision(name: str) -> str:
    proc = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", name],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return proc.stdout.strip()


def table(results: list[dict]) -> str:
    lines = [
        "| sweep | wall | jobs | mean job wall | fit + test | ID profile (per job) "
        "| outside fit+test | share of job wall | speed-up vs before |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    before = results[0]["wall_s"]
    for result in results:
        jobs = result["jobs"]

        def mean(key: str, jobs: list[dict] = jobs) -> float:
            return statistics.fmean(j[key] or 0.0 for j in jobs)

        outcomes = sorted({j["id_profile"] for j in jobs})
        lines.append(
            f"| {result['label']} | {result['wall_s']:.1f} s | {len(jobs)} "
            f"| {mean('wall_s'):.1f} s | {mean('fit_s') + mean('test_s'):.1f} s "
            f"| {mean('id_estimation_s'):.1f} s ({', '.join(outcomes)}) "
            f"| {mean('outside_s'):.1f} s | {100 * mean('outside_share'):.1f}% "
            f"| {before / result['wall_s']:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default="50b2023", help="git revision of 'today's code'")
    parser.add_argument("--after", default="HEAD", help="git revision of the code measured")
    parser.add_argument("--seeds", nargs="+", default=["0", "1"])
    parser.add_argument("--methods", nargs="+", default=["lora", "gelora_budget"])
    parser.add_argument("--task", default="rotten_tomatoes")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides for every sweep")
    args = parser.parse_args()

    grid = [
        "experiment=table_cpu",
        "experiment_name=bench_sweep",
        f"task={args.task}",
        f"method={','.join(args.methods)}",
        f"seed={','.join(args.seeds)}",
        *args.overrides,
    ]
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        tmp = Path(tmp)
        cache = tmp / "cache"  # archives copied from the user's cache; profiles start empty
        sys.path.insert(0, str(ROOT / "src"))
        from gelora.assets import cache_root, copy_verified_archives

        copy_verified_archives(cache_root() / "downloads", cache / "downloads")
        env = {**os.environ, "GELORA_CACHE": str(cache)}
        # Both versions run from worktrees of committed revisions: edits to this checkout while
        # the benchmark runs cannot leak into it.
        before_src = worktree(args.before, tmp / "before") / "src"
        after_src = worktree(args.after, tmp / "after") / "src"
        try:
            (tmp / "work").mkdir()
            results = [sweep("before", before_src, tmp / "work", grid, [], env)]
            results.append(sweep("cold", after_src, tmp / "work", grid, [], env))
            results.append(sweep("warm", after_src, tmp / "work", grid, [], env))
            parallel = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "threads=1"]
            results.append(
                sweep("warm, 2 jobs x 1 thread", after_src, tmp / "work", grid, parallel, env)
            )
        finally:
            for name in ("before", "after"):
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(tmp / name)], capture_output=True)  # fmt: skip
    text = table(results)
    header = (
        f"# bench_sweep: {len(results[0]['jobs'])} jobs ({args.task} x {', '.join(args.methods)} x "
        f"seeds {', '.join(args.seeds)}, experiment=table_cpu sizes); `before` = {args.before}, "
        f"the others = {revision(args.after)}\n\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_sweep.json").write_text(json.dumps(results, indent=2))
    (args.out / "bench_sweep.md").write_text(header + text + "\n")
    print(header + text)


if __name__ == "__main__":
    main()
