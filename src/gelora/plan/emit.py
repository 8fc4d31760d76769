"""``gelora-plan --emit KIND DEST``: the plan in the layout another tool reads.

- ``peft-bench DIR``: an experiment of peft's ``method_comparison`` benchmark
  (``method_comparison/MetaMathQA/experiments/<peft-method>/<experiment-name>/``, holding
  ``adapter_config.json`` and optionally ``training_params.json``: what its ``utils.py``
  ``validate_experiment_path`` and ``get_train_config`` read), written under
  ``DIR/experiments/lora/`` (or ``DIR/lora/`` when ``DIR`` is an ``experiments`` folder): the plan
  and, beside it, the shuffled control (the same ranks with whole blocks permuted by ``seed``).
- ``axolotl DIR`` or ``FILE.yaml``: a YAML snippet with axolotl's LoRA keys, the per-module ones
  being ``lora_rank_pattern`` / ``lora_alpha_pattern`` (axolotl 0.18.0, PR #3673).

The flags are parsed (``parse_emit``) before Hydra and before any model loads (a destination
that cannot be written, or an axolotl config that is not a YAML mapping, is refused there); the
files are written after the plan is made (``write_emits``). Nothing the user wrote is replaced
without a word: an existing axolotl config is merged into (every key gelora does not own kept,
the keys set named, the file as it was kept beside it as ``<name>.before-gelora[-N]``); an
existing peft-bench experiment folder that holds anything else than what this plan writes is
left alone and the emit refused in one line (the experiment's name carries the task, so plans of
two tasks do not collide).
"""

from __future__ import annotations

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
    _check_writable(kind, path)
    if kind == "axolotl" and is_yaml and path.is_file():
        existing_axolotl_config(path)  # a config that cannot be merged into: refused now
    return Emit(kind, path.absolute())  # where the command ran, whatever hydra.job.chdir says


def _check_writable(kind: str, path: Path) -> None:
    """Refuse a destination whose nearest existing folder cannot be written, before any model
    loads (else the profile and plan are computed, then a traceback)."""
    import os

    from gelora.run_folder import nearest_existing

    existing = nearest_existing(path if path.is_dir() else path.parent)
    file_locked = path.is_file() and not os.access(path, os.W_OK)
    if file_locked or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--emit {kind}: cannot write {path} ({existing} is not writable); "
                          "choose another destination")  # fmt: skip


def existing_axolotl_config(path: Path) -> dict:
    """The mapping an existing axolotl config holds ({} for an empty file).

    Raises:
        ConfigError: the file is not YAML, or not a mapping of keys.
    """
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"--emit axolotl: {path} cannot be read as YAML to merge into "
                          f"({type(error).__name__}); choose another file") from error  # fmt: skip
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"--emit axolotl: {path} holds a {type(loaded).__name__}, not a "
                          "mapping of axolotl keys; choose another file")  # fmt: skip
    return loaded


def shuffled_plan(plan, targets: Sequence, seed: int):
    """The shuffled control of ``plan`` as training draws it
    (``gelora.ranks.controls.block_permutation`` with the same seed): each block takes the ranks
    (and alphas) of another."""
    from gelora.ranks.controls import block_permutation, moved_sources
    from gelora.ranks.plan import AdapterSpec, RankPlan

    spec = {a.module_name: a for a in plan.adapters}
    rank_of = {name: a.rank for name, a in spec.items()}
    try:
        moved = block_permutation(targets, rank_of, seed, "the shuffled control")
    except ValueError as error:
        raise ConfigError(str(error)) from None
    source = {name: spec.get(taken) for name, taken in moved_sources(targets, moved).items()}
    adapters = tuple(
        AdapterSpec(t.name, t.block, s.rank, s.alpha, t.in_features, t.out_features)
        for t in targets
        if (s := source[t.name]) is not None
    )
    blocks = sorted(moved)
    note = f"blocks permuted with seed {seed}: block b takes block {[moved[b] for b in blocks]}[b]"
    return RankPlan(policy=f"{plan.policy}-shuffled", adapters=adapters, notes=(note,))


def write_peft_bench(
    plan, targets: Sequence, dest: Path, *, name: str, seed: int, model_id: str | None, **config
) -> list[Path]:
    """The plan and its shuffled control as two experiments of peft's ``method_comparison``
    layout; ``config``: ``peft_lora_config``'s keyword arguments (task type, dropout, head)."""
    import filecmp
    import shutil
    import tempfile

    from gelora.atomic import atomic_dir, write_json_atomic
    from gelora.lora.export import peft_lora_config

    root = dest if dest.name == "experiments" else dest / "experiments"
    control = shuffled_plan(plan, targets, seed)
    staged = []
    with tempfile.TemporaryDirectory() as scratch:
        for experiment, each in ((name, plan), (f"{name}-shuffled-seed{seed}", control)):
            lora_config = peft_lora_config(each, base_model_name_or_path=None, **config)
            lora_config.inference_mode = False  # as the benchmark's own experiments
            staging = Path(scratch) / experiment
            lora_config.save_pretrained(staging)
            if model_id:  # the benchmark's TrainConfig.model_id; else its default model
                write_json_atomic(staging / "training_params.json", {"model_id": model_id})
            staged.append((staging, root / "lora" / experiment))
        for staging, folder in staged:  # every conflict refused before anything is written
            if folder.exists() and not _same_tree(staging, folder, filecmp):
                raise ConfigError(
                    f"--emit peft-bench: {folder} exists and holds other files or another plan "
                    "(yours are kept, nothing was written); emit into another folder, or move "
                    "that experiment away first"
                )
        written = []
        for staging, folder in staged:
            if not folder.exists():  # an identical experiment stays as it is
                with atomic_dir(folder) as target:
                    shutil.copytree(staging, target, dirs_exist_ok=True)
            written.append(folder)
    return written


def _same_tree(new: Path, old: Path, filecmp) -> bool:
    """Whether the folder ``old`` holds exactly the files ``new`` does, byte for byte."""
    names = sorted(p.name for p in new.iterdir())
    if not old.is_dir() or sorted(p.name for p in old.iterdir()) != names:
        return False
    return all(filecmp.cmp(new / n, old / n, shallow=False) for n in names)


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


@dataclass(frozen=True)
class AxolotlWrite:
    """What ``write_axolotl`` did: the file, the keys it set, and the user's file as it was."""

    path: Path
    set_keys: tuple[str, ...]
    kept_keys: int = 0  # the user's keys left as they were
    backup: Path | None = None  # the existing file, copied before the merge

    def text(self) -> str:
        if self.backup is None:
            return f"axolotl LoRA keys: {self.path}"
        return (
            f"axolotl LoRA keys merged into {self.path}: set {', '.join(self.set_keys)}; kept "
            f"{self.kept_keys} other key(s) as they were; the file before the merge (with its "
            f"comments): {self.backup}"
        )


def _backup_name(path: Path) -> Path:
    candidate = path.with_name(f"{path.name}.before-gelora")
    k = 1
    while candidate.exists():
        k += 1
        candidate = path.with_name(f"{path.name}.before-gelora-{k}")
    return candidate


def write_axolotl(lora_config, dest: Path, *, model: str) -> AxolotlWrite:
    """``axolotl_keys`` as YAML, with a header naming the axolotl version the keys follow; into
    an existing config, merged: its other keys kept in their order, ours set, and the file as it
    was copied beside it first (PyYAML drops comments on the way)."""
    import shutil

    import yaml

    from gelora.atomic import write_text_atomic

    path = dest if dest.suffix in (".yaml", ".yml") else dest / AXOLOTL_FILE
    ours = axolotl_keys(lora_config)
    theirs = existing_axolotl_config(path) if path.is_file() else None
    merged = ours if theirs is None else {**theirs, **ours}
    body = yaml.safe_dump(merged, sort_keys=False, default_flow_style=False)
    backup = None
    if theirs is not None:
        backup = _backup_name(path)
        shutil.copy2(path, backup)
    write_text_atomic(path, AXOLOTL_HEADER.format(model=model) + body)
    kept = 0 if theirs is None else sum(key not in ours for key in theirs)
    return AxolotlWrite(path, tuple(ours), kept, backup)
