"""``gelora-plan --emit KIND DEST``: the plan in the layout another tool reads.

- ``peft-bench DIR``: an experiment of peft's ``method_comparison`` benchmark
  (``method_comparison/MetaMathQA/experiments/<peft-method>/<experiment-name>/``, holding
  ``adapter_config.json`` and optionally ``training_params.json``: what its ``utils.py``
  ``validate_experiment_path`` and ``get_train_config`` read), written under
  ``DIR/experiments/lora/`` (or ``DIR/lora/`` when ``DIR`` is an ``experiments`` folder): the plan
  and, beside it, the shuffled control (the same ranks with whole blocks permuted by ``seed``).
- ``axolotl DIR`` or ``FILE.yaml``: a YAML snippet with axolotl's LoRA keys, the per-module ones
  being ``lora_rank_pattern`` / ``lora_alpha_pattern`` (axolotl 0.18.0, PR #3673).

The flags are parsed (``parse_emit``) before Hydra and before any model loads; the files are
written after the plan is made (``write_emits``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gelora.errors import ConfigError

EMIT_KINDS = ("peft-bench", "axolotl")
AXOLOTL_FILE = "gelora_lora.yaml"
AXOLOTL_HEADER = """\
# GeLoRA rank plan for axolotl, written by gelora-plan --emit axolotl ({model}).
# Keys follow axolotl 0.18.0 (PR #3673 "per-module rank/alpha overrides via rank_pattern /
# alpha_pattern", docs/lora.qmd; schema src/axolotl/utils/schemas/peft.py: lora_rank_pattern and
# lora_alpha_pattern are dict[str, PositiveInt], forwarded to peft's LoraConfig). Each pattern key
# matches exactly one module by peft's rule (re.match(r"(.*\\.)?(KEY)$", module_name)).
# Merge these keys into your axolotl config (base_model, datasets, ... are yours).
"""


@dataclass(frozen=True)
class Emit:
    """One ``--emit KIND DEST``."""

    kind: str
    dest: Path


@dataclass(frozen=True)
class PlanOptions:
    """``gelora-plan``'s own flags (taken out of argv before Hydra)."""

    serving_report: bool = False
    emits: tuple[Emit, ...] = ()


def parse_emit(kind: str | None, dest: str | None) -> Emit:
    """``--emit KIND DEST`` checked before anything loads.

    Raises:
        ConfigError: an unknown kind, a missing destination (or a config override where the
            destination belongs), or a destination of the wrong type.
    """
    if kind not in EMIT_KINDS:
        raise ConfigError(f"--emit takes one of {', '.join(EMIT_KINDS)} and a destination, "
                          f"got {kind!r}")  # fmt: skip
    if not dest or dest.startswith("-") or "=" in dest:
        what = "folder or .yaml file" if kind == "axolotl" else "folder"
        raise ConfigError(f"--emit {kind} needs a destination {what}, got {dest!r}")
    path = Path(dest)
    is_yaml = path.suffix in (".yaml", ".yml")
    if path.exists() and not path.is_dir() and not (kind == "axolotl" and is_yaml):
        raise ConfigError(f"--emit {kind}: {dest} is a file, not a folder")
    if kind == "peft-bench" and is_yaml:
        raise ConfigError(f"--emit peft-bench writes a folder of experiments, got {dest!r}")
    return Emit(kind, path.absolute())  # where the command ran, whatever hydra.job.chdir says


def shuffled_plan(plan, targets: Sequence, seed: int):
    """The shuffled control of ``plan``: each block takes the ranks (and alphas) of another,
    whole blocks permuted by ``seed`` (drawn again while nothing moves, when anything can)."""
    from gelora.ranks.plan import AdapterSpec, RankPlan, within_block

    spec = {a.module_name: a for a in plan.adapters}
    blocks = sorted({t.block for t in targets})
    relative = {t.name: within_block(t.name, t.block) for t in targets}
    by_block = {
        b: {relative[t.name]: spec.get(t.name) for t in targets if t.block == b} for b in blocks
    }
    if any(set(by_block[b]) != set(by_block[blocks[0]]) for b in blocks):
        raise ConfigError("the shuffled control needs every block to hold the same matrices")
    rank = lambda s: s.rank if s else 0  # noqa: E731
    unmoved = [rank(spec.get(t.name)) for t in targets]
    generator, order = random.Random(seed), list(blocks)
    for _ in range(100):
        generator.shuffle(order)
        moved = dict(zip(blocks, order, strict=True))
        source = {t.name: by_block[moved[t.block]][relative[t.name]] for t in targets}
        if [rank(source[t.name]) for t in targets] != unmoved:
            break
    adapters = tuple(
        AdapterSpec(t.name, t.block, s.rank, s.alpha, t.in_features, t.out_features)
        for t in targets
        if (s := source[t.name]) is not None
    )
    note = f"blocks permuted with seed {seed}: block b takes block {[moved[b] for b in blocks]}[b]"
    return RankPlan(policy=f"{plan.policy}-shuffled", adapters=adapters, notes=(note,))


def write_peft_bench(
    plan, targets: Sequence, dest: Path, *, name: str, seed: int, model_id: str | None, **config
) -> list[Path]:
    """The plan and its shuffled control as two experiments of peft's ``method_comparison``
    layout; ``config``: ``peft_lora_config``'s keyword arguments (task type, dropout, head)."""
    from gelora.atomic import atomic_dir, write_json_atomic
    from gelora.lora.export import peft_lora_config

    root = dest if dest.name == "experiments" else dest / "experiments"
    written = []
    control = shuffled_plan(plan, targets, seed)
    for experiment, each in ((name, plan), (f"{name}-shuffled-seed{seed}", control)):
        lora_config = peft_lora_config(each, base_model_name_or_path=None, **config)
        lora_config.inference_mode = False  # as the benchmark's own experiments
        folder = root / "lora" / experiment
        with atomic_dir(folder) as staging:
            lora_config.save_pretrained(staging)
            if model_id:  # the benchmark's TrainConfig.model_id; else its default model
                write_json_atomic(staging / "training_params.json", {"model_id": model_id})
        written.append(folder)
    return written


def _whole(value: float, what: str) -> int:
    if float(value) != int(value) or value < 1:
        raise ConfigError(f"axolotl holds {what} as a positive integer, the plan has {value:g} "
                          "(lora.scaling=rslora?): use lora.scaling=constant")  # fmt: skip
    return int(value)


def axolotl_keys(lora_config) -> dict:
    """The ``LoraConfig``'s LoRA settings under axolotl's config keys."""
    keys = {
        "adapter": "lora",
        "lora_r": lora_config.r,
        "lora_alpha": _whole(lora_config.lora_alpha, "lora_alpha"),
        "lora_dropout": lora_config.lora_dropout,
        "lora_target_modules": sorted(lora_config.target_modules, key=_module_order),
        "lora_rank_pattern": dict(lora_config.rank_pattern),
        "lora_alpha_pattern": {
            key: _whole(alpha, f"lora_alpha_pattern[{key!r}]")
            for key, alpha in lora_config.alpha_pattern.items()
        },
    }
    if lora_config.modules_to_save:
        keys["lora_modules_to_save"] = list(lora_config.modules_to_save)
    return keys


def _module_order(name: str) -> tuple:
    return tuple(int(p) for p in name.split(".") if p.isdigit()), name


def write_axolotl(lora_config, dest: Path, *, model: str) -> Path:
    """``axolotl_keys`` as YAML, with a header naming the axolotl version the keys follow."""
    import yaml

    from gelora.atomic import write_text_atomic

    path = dest if dest.suffix in (".yaml", ".yml") else dest / AXOLOTL_FILE
    body = yaml.safe_dump(axolotl_keys(lora_config), sort_keys=False, default_flow_style=False)
    return write_text_atomic(path, AXOLOTL_HEADER.format(model=model) + body)
