"""What a run prints at start: the ID profile, the rank plan per layer, the parameter budget."""

from __future__ import annotations

from gelora.geometry.id_profile import IDProfile
from gelora.ranks.plan import RankPlan, within_block
from gelora.ranks.sensitivity import RankSensitivity


def format_id_profile(profile: IDProfile) -> str:
    spread = f", +/- std over {profile.resampling} resamples" if profile.resampling else ""
    lines = [
        f"Intrinsic dimension per hidden-state layer ({profile.estimator}{spread})",
        f"{'layer':<12}{'ID':>8}{'+/-':>7}{'gap':>8}{'used':>8}{'dropped':>9}",
    ]
    previous = None
    for layer in profile.layers:
        name = "embeddings" if layer.layer == 0 else f"block {layer.layer - 1:>2}"
        gap = "" if previous is None else f"{layer.dimension - previous:+.2f}"
        std = "" if layer.std is None else f"{layer.std:.2f}"
        lines.append(
            f"{name:<12}{layer.dimension:>8.2f}{std:>7}{gap:>8}{layer.n_used:>8}"
            f"{layer.n_dropped:>9}"
        )
        previous = layer.dimension
    return "\n".join(lines)


def format_rank_plan(
    plan: RankPlan, n_blocks: int, sensitivity: RankSensitivity | None = None
) -> str:
    """One line per block; a block whose matrices differ in rank lists them in module order."""
    ranges = sensitivity.block_rank_ranges if sensitivity else None
    uniform_blocks = all(
        len({a.rank for a in plan.adapters if a.block == b}) <= 1 for b in range(n_blocks)
    )
    header = "one rank per block" if uniform_blocks else "ranks per block (per matrix)"
    lines = [
        f"Rank plan ({plan.policy}): {header}",
        f"{'block':<7}{'rank':>6}{'alpha':>8}{'matrices':>10}{'params':>10}"
        + (f"{'resampled':>11}" if ranges else ""),
    ]
    for block in range(n_blocks):
        adapters = [a for a in plan.adapters if a.block == block]
        if not adapters:
            lines.append(f"{block:<7}{0:>6}{'-':>8}{0:>10}{0:>10}  (no adapter)")
            continue
        ranks = sorted({a.rank for a in adapters})
        alphas = sorted({a.alpha for a in adapters})
        rank = str(ranks[0]) if len(ranks) == 1 else f"{ranks[0]}-{ranks[-1]}"
        alpha = f"{alphas[0]:g}" if len(alphas) == 1 else f"{alphas[0]:g}-{alphas[-1]:g}"
        lines.append(
            f"{block:<7}{rank:>6}{alpha:>8}{len(adapters):>10}"
            f"{sum(a.n_params for a in adapters):>10,}"
            + (f"{f'{ranges[block][0]}..{ranges[block][1]}':>11}" if ranges else "")
            + ("" if len(ranks) == 1 else f"  ({', '.join(str(a.rank) for a in adapters)})")
        )
    relative = sorted({within_block(a.module_name, a.block) for a in plan.adapters})
    lines.append(f"adapted matrices per block: {', '.join(relative)}")
    lines.append(f"total adapter parameters: {plan.trainable_adapter_params:,}")
    if sensitivity:
        changed = sensitivity.changed_blocks_per_resample
        n_moved = len(changed) - changed.count(0)
        lines.append(
            f"sensitivity: {n_moved} of {sensitivity.n_resamples} resamples changed a block's "
            f"rank (blocks changed per resample: {changed}); "
            f"unstable blocks: {sensitivity.unstable_blocks or 'none'}"
        )
    return "\n".join(lines)


def format_parameter_budget(adapter: int, trainable: int, total: int) -> str:
    return (
        f"trainable: {trainable:,} of {total:,} parameters ({100 * trainable / total:.3f}%); "
        f"LoRA adapters {adapter:,} ({100 * adapter / total:.3f}%), "
        f"head {trainable - adapter:,}"
    )
