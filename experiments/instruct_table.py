"""The table of an instruction-tuning sweep (``experiment=instruct_cpu``) and its files for the
repository: each job's ``results.json`` without the ``config`` copy, and its IFBench answers.

    python experiments/instruct_table.py multirun_outputs/instruct_cpu/<sweep_id> \
        experiments/results/instruct_cpu

prints the Markdown table of experiments/results/instruct_cpu.md.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROWS = ("untrained", "lora", "gelora_budget", "gelora", "adalora")


def ranks_text(ranks: list[int] | None) -> str:
    """Block ranks, runs of equal ranks written ``r x n``."""
    if not ranks:
        return "-"
    runs: list[list[int]] = []
    for rank in ranks:
        if runs and runs[-1][0] == rank:
            runs[-1][1] += 1
        else:
            runs.append([rank, 1])
    return ", ".join(f"{r}" if n == 1 else f"{r} x{n}" for r, n in runs)


def main(sweep: Path, out: Path) -> None:
    records = []
    for path in sorted(sweep.glob("*/results.json")):
        record = json.loads(path.read_text())
        record.pop("config", None)
        target = out / path.parent.name
        target.mkdir(parents=True, exist_ok=True)
        (target / "results.json").write_text(json.dumps(record, indent=2) + "\n")
        answers = path.parent / "ifbench_answers.jsonl"
        if answers.is_file():
            shutil.copyfile(answers, target / "ifbench_answers.jsonl")
        records.append(record)
    records.sort(
        key=lambda r: (ROWS.index(r["variant"]) if r["variant"] in ROWS else 99, r["seed"])
    )
    print(
        "| row | seed | adapter params | block ranks | steps | best val loss | test loss "
        "| test ppl | IFBench prompt strict | prompt loose | instruction strict "
        "| instruction loose "
        "| scored (prompts, instructions) | wall |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in records:
        m = r.get("metrics") or {}
        if r["status"] != "completed":
            print(f"| {r['variant']} | {r['seed']} | {r['status']}: {r.get('error')} |")
            continue
        trained = r["variant"] != "untrained"
        params = f"{r['trainable_adapter_params']:,}" if trained else "none trained"
        ranks = ranks_text(r.get("block_ranks")) if trained else "-"
        best = f"{m['val/response_loss_best']:.4f}" if "val/response_loss_best" in m else "-"
        n_instructions = int(m["test/ifbench_instructions"])
        n_scored = n_instructions - int(m["test/ifbench_instructions_unscored"])
        print(
            f"| {r['variant']} | {r['seed']} | {params} | {ranks} | {r['optimizer_steps']} "
            f"| {best} | {m['test/response_loss']:.4f} | {m['test/perplexity']:.2f} "
            f"| {m['test/ifbench_prompt_strict']:.3f} | {m['test/ifbench_prompt_loose']:.3f} "
            f"| {m['test/ifbench_instruction_strict']:.3f} "
            f"| {m['test/ifbench_instruction_loose']:.3f} "
            f"| {int(m['test/ifbench_prompts_scored'])} of {int(m['test/ifbench_prompts'])}, "
            f"{n_scored} of {n_instructions} | {r['timings']['total_s'] / 60:.1f} min |"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
