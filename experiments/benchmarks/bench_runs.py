"""Benchmark: whole default runs per method, and GeLoRA's wall time relative to each.

    python experiments/benchmarks/bench_runs.py [--methods gelora lora adalora] [-- overrides...]

Runs ``gelora-train method=<method>`` once per method, one after the other, with the
default config (add Hydra overrides after ``--``), each in its own process and run directory
under ``--work``. GeLoRA's time includes its ID estimation (every method estimates the profile,
since every run prints it; only GeLoRA needs it, so the table also gives each method's time
without it). Writes ``bench_runs.json`` and ``bench_runs.md`` next to this script (or to
``--out``) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_method(method: str, work: Path, overrides: list[str]) -> dict:
    run_dir = work / method
    command = [
        sys.executable,
        "-m",
        "gelora.train",
        f"method={method}",
        f"hydra.run.dir={run_dir}",
        "logger=none",
        *overrides,
    ]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{proc.stderr[-3000:]}")
    results = json.loads((run_dir / "results.json").read_text())
    timings = results["timings"]
    return {
        "method": method,
        "wall_s": round(wall, 1),
        "run_s": timings["total_s"],
        "id_estimation_s": timings.get("id_estimation_s", 0.0),
        "fit_s": timings["fit_s"],
        "optimizer_steps": results["optimizer_steps"],
        "adapter_params": results["trainable_adapter_params"],
        "test_metric": results["metrics"][f"test/{results['metric']}"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", nargs="+", default=["gelora", "lora", "adalora"])
    parser.add_argument("--work", type=Path, default=None, help="run directories (default: temp)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_runs_"))

    rows = []
    for method in args.methods:
        print(f"running {method} ...", flush=True)
        rows.append(run_method(method, work, args.overrides))
        print(json.dumps(rows[-1]), flush=True)
    gelora = next((r for r in rows if r["method"] == "gelora"), None)
    lines = [
        "# Whole default runs, one per method (2-core CPU unless stated)",
        "",
        f"Overrides: `{' '.join(args.overrides) or '(none)'}`. One run each, in sequence.",
        "",
        "| method | run (s) | ID estimation (s) | fit (s) | steps | adapter params | test score"
        " | GeLoRA run / this run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratio = f"{gelora['run_s'] / row['run_s']:.3f}" if gelora else "-"
        lines.append(
            f"| {row['method']} | {row['run_s']:.1f} | {row['id_estimation_s']:.1f} "
            f"| {row['fit_s']:.1f} | {row['optimizer_steps']} | {row['adapter_params']:,} "
            f"| {row['test_metric']:.4f} | {ratio} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_runs.json").write_text(
        json.dumps({"overrides": args.overrides, "runs": rows}, indent=2) + "\n"
    )
    (args.out / "bench_runs.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
