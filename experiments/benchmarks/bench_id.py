"""Benchmark: our TwoNN against scikit-dimension and dadapy, in one process, on the same data.

    python experiments/benchmarks/bench_id.py [--sizes 1000 5000 10000 20000] [--widths 384 768]

For every (N, width): a 10-dimensional Gaussian embedded in ``width`` coordinates with small
noise, in float32. Timed side by side (median of ``--repeats``): one float32 product ``X @ X.T``
(the work any exact all-pairs search must do), our TwoNN, scikit-dimension's TwoNN on the same
float32 array, and dadapy's ``compute_id_2NN``. Writes ``bench_id.json`` and ``bench_id.md``
next to this script (or to ``--out``) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gelora import TwoNN


def embedded_gaussian(n: int, width: int, d: int = 10, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((width, d)))
    points = np.empty((n, width), dtype=np.float32)
    for start in range(0, n, 4096):  # in chunks, so making the data costs little memory
        rows = min(4096, n - start)
        chunk = rng.standard_normal((rows, d)) @ basis.T + 1e-3 * rng.standard_normal((rows, width))
        points[start : start + rows] = chunk
    return points


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def bench_one(n: int, width: int, repeats: int, max_reference_n: int) -> dict:
    points = embedded_gaussian(n, width)
    tensor = torch.from_numpy(points)
    row: dict = {"n": n, "width": width}
    row["product_s"], _ = timed(lambda: tensor @ tensor.T, repeats)
    row["gelora_s"], est = timed(lambda: TwoNN().fit(tensor).dimension_, repeats)
    row["gelora_id"] = est
    if n <= max_reference_n:
        try:
            import skdim

            row["skdim_s"], row["skdim_id"] = timed(
                lambda: skdim.id.TwoNN().fit(points).dimension_, repeats
            )
        except ImportError:
            pass
        try:
            from dadapy import Data

            def dadapy_id() -> float:
                return Data(points.astype(np.float64), verbose=False).compute_id_2NN()[0]

            row["dadapy_s"], row["dadapy_id"] = timed(dadapy_id, repeats)
        except ImportError:
            pass
    row["gelora_over_product"] = row["gelora_s"] / row["product_s"]
    if "skdim_s" in row:
        row["skdim_over_gelora"] = row["skdim_s"] / row["gelora_s"]
    if "dadapy_s" in row:
        row["dadapy_over_gelora"] = row["dadapy_s"] / row["gelora_s"]
    return row


_MEMORY_PROBE = """
import sys, time, torch
sys.path.insert(0, {here!r})
from bench_id import embedded_gaussian
from gelora import TwoNN

def peak_mb():  # VmHWM belongs to this process image (ru_maxrss would carry the parent's)
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
    return int(line.split()[1]) / 1024

points = torch.from_numpy(embedded_gaussian({n}, {width}))
before = peak_mb()
start = time.perf_counter()
estimate = TwoNN().fit(points).dimension_
seconds = time.perf_counter() - start
print(before, peak_mb(), seconds, estimate)
"""


def peak_memory(n: int, width: int) -> dict:
    """Peak resident memory of one TwoNN fit on ``n`` points, measured in a fresh process."""
    code = _MEMORY_PROBE.format(here=str(Path(__file__).parent), n=n, width=width)
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    before, after, seconds, estimate = map(float, output[-4:])
    return {
        "n": n,
        "width": width,
        "data_mb": n * width * 4 / 2**20,
        "peak_rss_before_fit_mb": before,
        "peak_rss_after_fit_mb": after,
        "fit_s": seconds,
        "gelora_id": estimate,
    }


def markdown(rows: list[dict]) -> str:
    def cell(row: dict, key: str, fmt: str) -> str:
        return format(row[key], fmt) if key in row else "-"

    lines = [
        "| N | width | X@X.T s | gelora s | gelora/product | skdim s | skdim/gelora | dadapy s "
        "| dadapy/gelora | ID gelora | ID skdim | ID dadapy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['width']} | {cell(r, 'product_s', '.3f')} | "
            f"{cell(r, 'gelora_s', '.3f')} | {cell(r, 'gelora_over_product', '.2f')} | "
            f"{cell(r, 'skdim_s', '.3f')} | {cell(r, 'skdim_over_gelora', '.2f')} | "
            f"{cell(r, 'dadapy_s', '.3f')} | {cell(r, 'dadapy_over_gelora', '.2f')} | "
            f"{cell(r, 'gelora_id', '.3f')} | {cell(r, 'skdim_id', '.3f')} | "
            f"{cell(r, 'dadapy_id', '.3f')} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000, 20000])
    parser.add_argument("--widths", type=int, nargs="+", default=[384, 768])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-reference-n", type=int, default=20000)
    parser.add_argument("--memory-n", type=int, default=50000, help="0 skips the memory probe")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    rows = []
    for width in args.widths:
        for n in args.sizes:
            rows.append(bench_one(n, width, args.repeats, args.max_reference_n))
            print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    memory = peak_memory(args.memory_n, 768) if args.memory_n else None
    if memory:
        print(f"memory: {json.dumps(memory)}", flush=True)
    meta = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "repeats": args.repeats,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_id.json").write_text(
        json.dumps({"meta": meta, "rows": rows, "memory": memory}, indent=2)
    )
    table = markdown(rows)
    memory_line = (
        f"\nPeak memory, TwoNN on N={memory['n']:,} x {memory['width']} float32 "
        f"({memory['data_mb']:.0f} MB of data): {memory['peak_rss_after_fit_mb']:.0f} MB resident "
        f"at peak ({memory['peak_rss_before_fit_mb']:.0f} MB before the fit), "
        f"{memory['fit_s']:.1f} s.\n"
        if memory
        else ""
    )
    (args.out / "bench_id.md").write_text(
        f"# bench_id\n\n{json.dumps(meta)}\n\nMedian of {args.repeats} runs, float32 input.\n\n"
        f"{table}\n{memory_line}"
    )
    print(table)


if __name__ == "__main__":
    main()
