"""What a run prints at start: the ID profile, the rank plan per layer, the parameter budget."""

from __future__ import annotations

from gelora.geometry.id_profile import IDProfile
from gelora.ranks.plan import RankPlan


def format_id_profile(profile: IDProfile) -> str:
    lines = [
        f"Intrinsic dimension per hidden-state layer ({profile.estimator})",
        f"{'layer':<12}{'ID':>8}{'gap':>8}{'used':>8}{'dropped':>9}",
    ]
    previous = None
    for layer in profile.layers:
        name = "embeddings" if layer.layer == 0 else f"block {layer.layer - 1:>2}"
        gap = "" if previous is None else f"{layer.dimension - previous:+.2f}"
        lines.append(
            f"{name:<12}{layer.dimension:>8.2f}{gap:>8}{layer.n_used:>8}{layer.n_dropped:>9}"
        )
        previous = layer.dimension
    return "\n".join(lines)


def format_rank_plan(plan: RankPlan, n_blocks: int) -> str:
    lines = [
        f"Rank plan ({plan.policy}): one rank per block, shared by its adapted matrices",
        f"{'block':<7}{'rank':>6}{'alpha':>8}{'matrices':>10}{'params':>10}",
    ]
    for block in range(n_blocks):
        adapters = [a for a in plan.adapters if a.block == block]
        if not adapters:
            lines.append(f"{block:<7}{0:>6}{'-':>8}{0:>10}{0:>10}  (no adapter)")
            continue
        lines.append(
            f"{block:<7}{adapters[0].rank:>6}{adapters[0].alpha:>8g}{len(adapters):>10}"
            f"{sum(a.n_params for a in adapters):>10,}"
        )
    relative = sorted({a.module_name.split(f".{a.block}.", 1)[-1] for a in plan.adapters})
    lines.append(f"adapted matrices per block: {', '.join(relative)}")
    lines.append(f"total adapter parameters: {plan.trainable_adapter_params:,}")
    return "\n".join(lines)


def format_parameter_budget(adapter: int, trainable: int, total: int) -> str:
    return (
        f"trainable: {trainable:,} of {total:,} parameters ({100 * trainable / total:.3f}%); "
        f"LoRA adapters {adapter:,} ({100 * adapter / total:.3f}%), "
        f"head {trainable - adapter:,}"
    )
