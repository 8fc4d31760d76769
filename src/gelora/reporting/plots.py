"""Figures a reader understands without the code: the ID profile and the rank plan."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: runs on servers and in CI
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from gelora.atomic import atomic_file
from gelora.geometry.id_profile import IDProfile
from gelora.ranks.plan import RankPlan


def save_figure(figure, path: Path, *, fixed_size: bool = False) -> Path:
    """Write ``figure`` to ``path`` atomically and close it.

    ``fixed_size`` keeps the figure's own size in pixels (laid out to fit inside it) instead of
    cropping to the drawn content: figures shown side by side (a run's two, on a dashboard) then
    have the same size.
    """
    try:
        with atomic_file(path) as tmp:
            if fixed_size:
                figure.tight_layout()
                figure.savefig(tmp, dpi=120)
            else:
                figure.savefig(tmp, dpi=120, bbox_inches="tight")
    finally:
        plt.close(figure)
    return path


def estimator_label(profile: IDProfile) -> str:
    """The estimator's name for an axis: ``TwoNN``, ``TwoNN, MLE form``, ``MLE``, ..."""
    text = profile.estimator
    name = text.split("(", 1)[0] or "estimate"
    return f"{name}, MLE form" if name == "TwoNN" and "method='mle'" in text else name


def plot_id_profile(profile: IDProfile, path: Path, *, title: str = "") -> Path:
    dims = profile.dimensions
    labels = ["emb"] + [f"b{i}" for i in range(len(dims) - 1)]
    figure, ax = plt.subplots(figsize=(6.4, 3.6))
    errors = [s if s is not None else 0.0 for s in profile.stds]
    ax.errorbar(range(len(dims)), dims, yerr=errors, marker="o", color="tab:blue", capsize=3)
    for x, d in enumerate(dims):
        ax.annotate(f"{d:.1f}", (x, d), textcoords="offset points", xytext=(0, 6), ha="center")
    ax.set_xticks(range(len(dims)), labels)
    ax.set_xlabel("hidden-state layer (embeddings output, then each block's output)")
    ax.set_ylabel(f"intrinsic dimension ({estimator_label(profile)})")
    ax.set_title(title or "Intrinsic dimension of hidden states across depth")
    ax.grid(alpha=0.3)
    return save_figure(figure, path, fixed_size=True)


def plot_rank_plan(plan: RankPlan, n_blocks: int, path: Path, *, title: str = "") -> Path:
    ranks = plan.block_ranks(n_blocks)
    figure, ax = plt.subplots(figsize=(6.4, 3.6))
    bars = ax.bar(range(n_blocks), ranks, color="tab:orange")
    ax.bar_label(bars, labels=[str(r) for r in ranks])
    ax.set_xticks(range(n_blocks), [f"block {i}" for i in range(n_blocks)])
    ax.set_ylabel("LoRA rank (largest among the block's matrices)")
    ax.set_title(
        title or f"Rank plan: {plan.policy}, {plan.trainable_adapter_params:,} adapter parameters"
    )
    ax.set_ylim(0, max([*ranks, 1]) * 1.2)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="y", alpha=0.3)
    return save_figure(figure, path, fixed_size=True)
