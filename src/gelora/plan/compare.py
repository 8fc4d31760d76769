"""How much a rank plan hangs on choices the GeLoRA paper leaves open (issue 26).

The paper fixes the rule (block i's rank >= ceil(d_{i+1} - d_i), +1) but not how a sequence
becomes one vector (``estimator.pooling``), which texts form the sample (``estimator.sample_seed``),
whether a gap within its resampling noise counts (``rank_policy.noise_k``), or how a budget's rest
above the bounds is shared (``rank_policy.score``). ``gelora-plan --compare pooling`` plans once per
value and prints the plans side by side with how far they agree; ``experiments/plan_ablation.py``
runs the same comparison over six tasks.

A comparison varies config keys, never config groups: every variant is the same composed config
with one or more keys set (``OmegaConf.update``), checked before any model loads. Profiles and
backbones are shared between variants that differ only in the plan's keys, so comparing the gap
rules costs one ID profile.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gelora.errors import ConfigError

# Named comparisons: the key and the values it takes. ``token`` pooling draws one seeded
# non-special token per text; ``last`` is for decoders and is left out of the encoder default.
PRESETS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "pooling": ("estimator.pooling", ("mean", "cls", "token")),
    "seed": ("estimator.sample_seed", (0, 1, 2)),
    "gap": ("rank_policy.noise_k", (0, 1)),
    "remainder": ("rank_policy.score", ("gap", "id", "waterfill")),
}


@dataclass(frozen=True)
class Comparison:
    """One varied key and its values, e.g. ``estimator.pooling`` over mean, cls, token."""

    key: str
    values: tuple[Any, ...]

    @property
    def settings(self) -> list[str]:
        return [f"{self.key}={value}" for value in self.values]


def parse_comparison(spec: str) -> Comparison:
    """``pooling`` (a preset: ``PRESETS``) or ``key=v1,v2,...``; values read as YAML scalars.

    Raises:
        ConfigError: an unknown preset, no ``=``, an empty key or fewer than two values.
    """
    if spec in PRESETS:
        return Comparison(*PRESETS[spec])
    if "=" not in spec:
        raise ConfigError(
            f"--compare {spec!r}: give a preset ({', '.join(PRESETS)}) or key=value1,value2"
        )
    key, _, listed = spec.partition("=")
    values = tuple(yaml.safe_load(v) for v in listed.split(",") if v.strip())
    if not key.strip() or len(values) < 2:
        raise ConfigError(f"--compare {spec!r}: needs a key and at least two values")
    return Comparison(key.strip(), values)


def variant_configs(
    cfg: DictConfig, comparisons: Sequence[Comparison]
) -> list[tuple[str, DictConfig]]:
    """The composed config once per combination of the compared values, with its label.

    Raises:
        ConfigError: a key the config does not have, or a key naming a config group.
    """
    for comparison in comparisons:
        present = OmegaConf.select(cfg, comparison.key, default=_MISSING)
        if present is _MISSING:
            raise ConfigError(
                f"--compare: the config has no key {comparison.key!r} (compare keys such as "
                f"estimator.pooling; a config group such as estimator=mle cannot be compared)"
            )
        if OmegaConf.is_config(present):
            raise ConfigError(
                f"--compare: {comparison.key!r} is a config section, not a value: compare one "
                f"of its keys"
            )
    variants = []
    for values in itertools.product(*(c.values for c in comparisons)):
        variant = copy.deepcopy(cfg)  # keeps the schema's types: a mistyped value fails here
        labels = []
        for comparison, value in zip(comparisons, values, strict=True):
            label = f"{comparison.key}={value}"
            try:
                OmegaConf.update(variant, comparison.key, value, merge=False)
            except OmegaConfBaseException as error:
                raise ConfigError(f"--compare {label}: {error}".splitlines()[0]) from error
            labels.append(label)
        variants.append((" ".join(labels), variant))
    return variants


_MISSING = object()


@dataclass(frozen=True)
class PlanVariant:
    """One variant's ID profile and plan, in the form a table needs."""

    setting: str
    dimensions: list[float]
    block_ranks: list[int]
    params: int
    unstable_blocks: list[int]


@dataclass(frozen=True)
class Agreement:
    """How far the variants' plans agree.

    Attributes:
        block_rank_ranges: each block's (min, max) rank over the variants.
        identical_pairs: pairs of variants with the very same block ranks, of ``pairs``.
        largest_move: the largest rank difference of one block between two variants.
        top_blocks: the block holding the most rank, per variant (ties: the first).
    """

    block_rank_ranges: list[tuple[int, int]]
    identical_pairs: int
    pairs: int
    largest_move: int
    top_blocks: list[int]

    @property
    def stable(self) -> bool:
        return self.identical_pairs == self.pairs


def agreement(variants: Sequence[PlanVariant]) -> Agreement:
    if not variants:
        raise ValueError("no plans to compare")
    ranks = [v.block_ranks for v in variants]
    n_blocks = len(ranks[0])
    ranges = [(min(r[b] for r in ranks), max(r[b] for r in ranks)) for b in range(n_blocks)]
    pairs = list(itertools.combinations(ranks, 2))
    return Agreement(
        block_rank_ranges=ranges,
        identical_pairs=sum(a == b for a, b in pairs),
        pairs=len(pairs),
        largest_move=max((hi - lo for lo, hi in ranges), default=0),
        top_blocks=[r.index(max(r)) for r in ranks],
    )


def format_comparison(variants: Sequence[PlanVariant]) -> str:
    """The plans side by side (rank per block, adapter parameters, blocks whose rank moves over
    the half-samples), then one line on how far they agree."""
    n_blocks = len(variants[0].block_ranks)
    width = max(len(v.setting) for v in variants)
    head = f"{'setting':<{width}}  " + " ".join(f"b{b:<3d}" for b in range(n_blocks))
    lines = ["rank plans compared", f"{head}  {'params':>9}  unstable over half-samples"]
    for v in variants:
        ranks = " ".join(f"{r:<4d}" for r in v.block_ranks)
        unstable = ",".join(map(str, v.unstable_blocks)) or "-"
        lines.append(f"{v.setting:<{width}}  {ranks}  {v.params:>9,}  {unstable}")
    lines.append(format_agreement(agreement(variants)))
    return "\n".join(lines)


def format_agreement(found: Agreement) -> str:
    ranges = " ".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in found.block_rank_ranges)
    verdict = "the same plan every time" if found.stable else "the plans differ"
    return (
        f"{verdict}: {found.identical_pairs} of {found.pairs} pairs identical; rank per block "
        f"{ranges}; largest move {found.largest_move}; top block per variant "
        f"{','.join(map(str, found.top_blocks))}"
    )


def write_comparison(variants: Sequence[PlanVariant], out_dir: Path) -> Path:
    """``plan_comparison.json`` in ``out_dir``: every variant and the agreement."""
    from gelora.atomic import write_json_atomic

    path = out_dir / "plan_comparison.json"
    write_json_atomic(
        path,
        {"variants": [asdict(v) for v in variants], "agreement": asdict(agreement(variants))},
    )
    return path


def plan_variant(setting: str, profile, plan, n_blocks: int) -> PlanVariant:
    """A ``PlanVariant`` from the stages' ``ProfileResult`` and ``PlanResult``."""
    sensitivity = plan.sensitivity
    return PlanVariant(
        setting=setting,
        dimensions=[round(d, 3) for d in profile.profile.dimensions],
        block_ranks=plan.plan.block_ranks(n_blocks),
        params=plan.plan.trainable_adapter_params,
        unstable_blocks=sensitivity.unstable_blocks if sensitivity is not None else [],
    )


def compare_plans(
    cfg: DictConfig,
    comparisons: Sequence[Comparison],
    plan_for: Callable[[DictConfig], tuple[Any, Any, int]],
) -> list[PlanVariant]:
    """Plan every variant of ``cfg`` with ``plan_for`` (config -> profile result, plan result,
    number of blocks): ``gelora.plan.lora_config.PlanStages.plan``. Every variant's config is
    checked before the first is planned, and its method and budget built, so a bad value fails
    before any model loads."""
    from gelora.config.checks import check_config
    from gelora.stages.plan import check_budget_given, load_budget, load_method, load_scaling

    variants = variant_configs(cfg, comparisons)
    for setting, variant in variants:
        try:
            check_config(variant)
            method = load_method(variant.rank_policy, load_scaling(variant.get("lora")))
            check_budget_given(method, load_budget(variant.get("budget")))
        except ConfigError as error:
            raise ConfigError(f"--compare {setting}: {error}") from error
    return [plan_variant(setting, *plan_for(variant)) for setting, variant in variants]
