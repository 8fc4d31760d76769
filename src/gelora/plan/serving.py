"""What a rank plan costs where adapters are served, next to the uniform plan of the same size.

Multi-LoRA servers keep every loaded adapter in buffers of one rank: vLLM allocates each target's
LoRA weights at ``max_lora_rank`` (``--max-lora-rank``, one of ``VLLM_MAX_LORA_RANKS``:
``MaxLoRARanks`` in ``vllm/config/lora.py``) and zero-pads smaller adapters to it; SGLang
(``--max-lora-rank``) and TensorRT-LLM (``max_lora_rank``) size their LoRA memory the same way.
An adapter of mixed ranks therefore costs, once loaded, its largest rank on every target. The
report sets that padded cost against the uniform plan with the same parameter count (the same
targets at one rank), which pads to itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gelora.atomic import write_json_atomic
from gelora.ranks.plan import RankPlan, TargetModule

SERVING_REPORT = "serving_report.json"
VLLM_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vLLM's MaxLoRARanks


def _targets_of(plan: RankPlan) -> list[TargetModule]:
    return [
        TargetModule(a.module_name, a.block, a.in_features, a.out_features) for a in plan.adapters
    ]


def vllm_rank(rank: int) -> int | None:
    """The ``max_lora_rank`` vLLM needs for an adapter of largest rank ``rank`` (None: above
    every rank vLLM accepts)."""
    return next((r for r in VLLM_MAX_LORA_RANKS if r >= rank), None)


def _padded(targets: Sequence[TargetModule], rank: int | None) -> int | None:
    return None if rank is None else sum(t.lora_params(rank) for t in targets)


def _side(params: int, largest: int, targets: Sequence[TargetModule]) -> dict:
    padded = _padded(targets, largest)
    vllm = vllm_rank(largest)
    return {
        "largest_rank": largest,
        "adapter_params": params,
        "padded_params": padded,
        "padding_overhead": padded / params,
        "vllm_max_lora_rank": vllm,
        "vllm_padded_params": _padded(targets, vllm),
    }


def serving_report(plan: RankPlan, targets: Sequence[TargetModule] = ()) -> dict:
    """The plan's serving cost and the uniform plan's of the same budget.

    ``targets`` are the maps the plan chose among (default: its adapted modules); a server pads
    every one of them, adapted or not, to the largest rank. The uniform plan has the plan's
    parameter count spread at one rank over the same targets (rounded to the nearest rank).
    """
    targets = list(targets) or _targets_of(plan)
    params = plan.trainable_adapter_params
    per_rank = sum(t.lora_params(1) for t in targets)
    uniform_rank = max(1, round(params / per_rank))
    ours = _side(params, max(a.rank for a in plan.adapters), targets)
    uniform = _side(uniform_rank * per_rank, uniform_rank, targets)
    vllm_ratio = None
    if ours["vllm_padded_params"] and uniform["vllm_padded_params"]:
        vllm_ratio = ours["vllm_padded_params"] / uniform["vllm_padded_params"]
    return {
        "policy": plan.policy,
        "targets": len(targets),
        "adapted_modules": len(plan.adapters),
        "equivalent_uniform_rank": params / per_rank,
        "plan": ours,
        "uniform": uniform,
        "params_ratio": ours["adapter_params"] / uniform["adapter_params"],
        "padded_ratio": ours["padded_params"] / uniform["padded_params"],
        "vllm_padded_ratio": vllm_ratio,
        "note": "padded: every target at the adapter's largest rank, as multi-LoRA servers "
        "(vLLM max_lora_rank, SGLang, TensorRT-LLM) allocate it",
    }


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def format_serving_report(report: dict) -> str:
    """The report as a few console lines."""
    ours, uniform = report["plan"], report["uniform"]
    rows = [("", report["policy"], f"uniform r={uniform['largest_rank']}")]
    for label, key in (
        ("largest rank", "largest_rank"),
        ("adapter params", "adapter_params"),
        ("padded params", "padded_params"),
        ("vLLM max_lora_rank", "vllm_max_lora_rank"),
        ("padded at it (vLLM)", "vllm_padded_params"),
    ):
        rows.append((label, _count(ours[key]), _count(uniform[key])))
    lines = [f"Serving report ({report['targets']} targets; padded = largest rank everywhere)"]
    lines += [f"  {a:<20} {b!s:>14} {c!s:>14}" for a, b, c in rows]
    ratios = f"params {report['params_ratio']:.2f}, padded {report['padded_ratio']:.2f}"
    if report["vllm_padded_ratio"]:
        ratios += f", vLLM padded {report['vllm_padded_ratio']:.2f}"
    lines.append(f"  ratio (plan / uniform): {ratios}")
    return "\n".join(lines)


def write_serving_report(report: dict, out_dir: Path) -> Path:
    path = out_dir / SERVING_REPORT
    write_json_atomic(path, report)
    return path
