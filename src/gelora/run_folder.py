"""A run folder holds one run, and its files describe that run and no other.

Before a run starts, ``claim_run_folder`` looks at what the folder already holds and decides:

- nothing (or only logs): a fresh run;
- a completed run with the same settings: nothing to do (``rerun=true`` runs it again, after
  moving the old run aside); with other settings: refused, nothing touched, unless
  ``rerun=true``, which moves the old run aside and runs this one;
- ``checkpoints/last.ckpt`` and ``resume=true``: a resume, but only if the checkpoint can be read
  and was saved by a run with the same settings (``run_settings``), else refused in one line;
- anything else (a failed or interrupted run, stale checkpoints, ``resume=false``): the old
  run's files (``RUN_OUTPUTS``) are moved into ``superseded/<time>/``, never deleted, and the run
  starts fresh.

A lock (``.lock``, through ``filelock``: flock on POSIX, msvcrt on Windows; who holds it in
``.lock.holder``) keeps a second process out of a folder while a run holds it;
the kernel releases it when the process ends, however it ends. In a distributed run only global
rank 0 claims the folder; the other ranks only read which checkpoint to resume.

"Settings" are the resolved config without the keys that do not change what a run computes
(``OPERATIONAL_KEYS``: where files go, logging, progress bars, caches, how often ``last.ckpt``
is written), plus the table row (``variant``) and, for a resume, the sha256 of every data split.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gelora.errors import ConfigError
from gelora.record import REDACTED, RunRecord, is_secret_key, redact_secrets

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
HOLDER_NAME = ".lock.holder"  # who holds LOCK_NAME: read when a second process is refused
SUPERSEDED = "superseded"
# What a run writes into its folder, and so what an earlier run's files are: these are moved
# aside before a fresh run; anything else (a user's own files) stays where it is. train.log is
# not among them: every attempt appends to it (Hydra has opened it for this one already).
RUN_OUTPUTS = (
    "results.json",
    "rank_plan.json",
    "id_profile.png",
    "rank_plan.png",
    "checkpoints",
    "adapter",
    "wandb",
    "csv",
    "lightning_logs",
    ".hydra",
    "ifbench_answers.jsonl",
    "mt_bench_answers.jsonl",
    "lora_config",
)
# Keys that do not change what a run computes: where files go, how it is logged and shown,
# caches (which return what they would compute), and how often last.ckpt is written.
OPERATIONAL_KEYS = (
    "paths",
    "logger",
    "resume",
    "rerun",
    "threads",
    "checkpoint_every_n_steps",
    "progress_every_n_steps",
    "experiment_name",
    "sweep_id",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
    "task.cache_tokens",
    "estimator.cache",
    "rank_policy.cache",  # the gradient allocators' score cache (conf/method/fisher.yaml)
    "rank_policy.allocator.cache",  # the same, inside their shuffled controls
)
# Classes and loaders that moved home without changing what they compute (issue 45: every
# allocator in ``gelora.ranks``; ``task=from_files`` read by its task kind): a record saved
# under the old ``_target_`` has the same settings.
_METHODS, _DATA = "gelora.methods", "gelora.data"  # the old homes are gone: named in parts
MOVED_TARGETS = {
    f"{_METHODS}.gradient_scores.FisherAllocator": "gelora.ranks.FisherAllocator",
    f"{_METHODS}.gradient_scores.GradientSpectrumAllocator": (
        "gelora.ranks.GradientSpectrumAllocator"
    ),
    f"{_METHODS}.shuffled.ShuffledControl": "gelora.ranks.ShuffledPolicy",
    f"{_DATA}.from_files.load_from_files": "gelora.kinds.from_files.load_from_files",
}
START_FRESH = (
    "start fresh with resume=false (the old run is moved to superseded/) "
    "or choose another hydra.run.dir"
)


class RunFolderError(ConfigError):
    """The run folder cannot hold this run as asked: one line, and nothing in it was changed."""


def superseded(path: Path, root: Path) -> bool:
    """Whether ``path`` (under ``root``) lies in a run folder's ``superseded/``: an older run,
    kept, but in no table and no commit of a sweep's results."""
    return SUPERSEDED in Path(path).relative_to(root).parts


def run_settings(config: Mapping[str, Any], variant: str | None) -> dict[str, Any]:
    """What a run computes from: the resolved ``config`` (secrets redacted, as in the record)
    without ``OPERATIONAL_KEYS``, and the table row ``variant``."""
    settings = redact_secrets(_plain(config))
    for dotted in OPERATIONAL_KEYS:
        node, *rest = dotted.split(".")
        holder = settings
        while rest and isinstance(holder.get(node), dict):
            holder, node, rest = holder[node], rest[0], rest[1:]
        if not rest and isinstance(holder, dict):
            holder.pop(node, None)
    _moved_targets(settings.get("rank_policy"))
    _moved_targets(settings.get("task"))
    return {"config": settings, "variant": variant}


def _moved_targets(node: Any) -> None:
    """``MOVED_TARGETS`` applied to every ``_target_`` of a node (``rank_policy``, ``task``), in
    place."""
    if isinstance(node, dict):
        target = node.get("_target_")
        if isinstance(target, str):
            node["_target_"] = MOVED_TARGETS.get(target, target)
        for value in node.values():
            _moved_targets(value)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def settings_differences(saved: Any, current: Any, prefix: str = "") -> list[str]:
    """``key: saved -> current`` for every setting that differs. A key present on one side only
    (a config key added or removed by a newer gelora) is not a difference."""
    if isinstance(saved, dict) and isinstance(current, dict):
        found = []
        for key in sorted(set(saved) & set(current)):
            found += settings_differences(saved[key], current[key], f"{prefix}{key}.")
        return found
    if saved != current:
        return [f"{prefix.rstrip('.')}: {_short(saved)} -> {_short(current)}"]
    return []


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_differences(differences: list[str], limit: int = 4) -> str:
    """The first ``limit`` differences, config keys as a user types them (``trainer.max_steps``)."""
    shown = "; ".join(d.removeprefix("config.") for d in differences[:limit])
    more = len(differences) - limit
    return shown + (f"; and {more} more" if more > 0 else "")


@dataclass(frozen=True)
class FolderClaim:
    """What ``claim_run_folder`` decided.

    Attributes:
        completed: the folder's completed record, when it already holds this very run.
        resume_from: ``checkpoints/last.ckpt`` to resume from (its settings checked).
        saved_data: the data fingerprints the checkpoint was trained on (split -> sha256),
            checked against the task once it is loaded (``check_resumed_data``).
        superseded: where the old run's files were moved, if they were.
    """

    completed: RunRecord | None = None
    resume_from: Path | None = None
    saved_data: dict[str, str] | None = None
    superseded: Path | None = None


def nearest_existing(path: Path) -> Path:
    """``path`` itself, or its nearest ancestor that exists (what a new folder is created in)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(out_dir: Path) -> None:
    """Create ``out_dir`` if need be and check that a file can be written in it; one line
    (``RunFolderError``) naming the folder otherwise."""
    import tempfile

    existing = nearest_existing(out_dir)
    if existing.exists() and not existing.is_dir():
        raise RunFolderError(f"run folder {out_dir}: {existing} is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise RunFolderError(
            f"run folder {out_dir} cannot be created or written: {reason}"
        ) from None


@contextlib.contextmanager
def folder_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``<out_dir>/.lock`` for the block; a second process gets ``RunFolderError`` naming
    the holder (``.lock.holder``: its pid and machine)."""
    import platform

    from filelock import FileLock, Timeout

    path = out_dir / LOCK_NAME
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        try:
            holder = (out_dir / HOLDER_NAME).read_text().strip()
        except OSError:
            holder = ""
        raise RunFolderError(
            f"run folder {out_dir} is in use by {holder or 'another process'}; wait for it to end "
            "or choose another hydra.run.dir"
        ) from None
    except OSError as error:
        raise RunFolderError(f"run folder {out_dir} is not writable: {error.strerror}") from None
    try:
        with contextlib.suppress(OSError):  # the lock holds; only its holder's name is lost
            (out_dir / HOLDER_NAME).write_text(f"pid {os.getpid()} on {platform.node()}\n")
        yield
    finally:
        lock.release()


def move_aside(out_dir: Path, why: str) -> Path | None:
    """Move every file of an earlier run in ``out_dir`` into ``superseded/<time>/`` (nothing is
    deleted); ``None`` when there was nothing to move."""
    old = [out_dir / name for name in RUN_OUTPUTS if (out_dir / name).exists()]
    if not old:
        return None
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    target = out_dir / SUPERSEDED / stamp
    suffix = 1
    while target.exists():
        target = out_dir / SUPERSEDED / f"{stamp}_{suffix}"
        suffix += 1
    target.mkdir(parents=True)
    for path in old:
        shutil.move(str(path), str(target / path.name))
    log.info("%s: the earlier run's files were moved to %s", why, target)
    return target


def read_checkpoint_state(path: Path) -> dict[str, Any]:
    """A gelora checkpoint's plain entries (tensors and plain data only: ``weights_only``), or
    ``RunFolderError`` naming the file for anything else: truncated, not a checkpoint, holding
    pickled objects, or not gelora's."""
    import pickle

    import torch

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        reason = "it holds pickled objects, which gelora never loads"
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError) as error:
        reason = f"it is damaged or not a checkpoint ({type(error).__name__})"
    else:
        if not isinstance(saved, dict) or "rank_plan" not in saved:
            reason = "it holds no rank plan: not a gelora checkpoint"
        elif "run_settings" not in saved:
            reason = (
                "it holds no run settings (saved by an older gelora), so a resume cannot be checked"
            )
        else:
            return saved
    raise RunFolderError(f"cannot resume from {path}: {reason}; {START_FRESH}")


def claim_run_folder(
    out_dir: Path,
    settings: dict[str, Any],
    *,
    resume: bool,
    rerun: bool = False,
    global_zero: bool = True,
) -> FolderClaim:
    """Decide what this run does with ``out_dir`` (see the module docstring). Call it while
    holding ``folder_lock``. Raises ``RunFolderError`` (nothing changed) on a conflict."""
    if not global_zero:  # rank 0 has prepared the folder; the others follow its checkpoint
        last = out_dir / "checkpoints" / "last.ckpt"
        return FolderClaim(resume_from=last if resume and last.is_file() else None)
    record = _completed_record(out_dir)
    if record is not None:
        # A run given no variant records its method's name: nothing to compare it with.
        saved = run_settings(record.config or {}, record.variant if settings["variant"] else None)
        differences = settings_differences(saved, settings)
        if differences and not rerun:
            raise RunFolderError(
                f"run folder {out_dir} holds a completed run with other settings "
                f"({describe_differences(differences)}); choose another hydra.run.dir (or a new "
                "sweep_id), or rerun=true to run this one there and move the old run aside"
            )
        if not rerun:
            return FolderClaim(completed=record)
        return FolderClaim(superseded=move_aside(out_dir, "rerun=true"))
    last = out_dir / "checkpoints" / "last.ckpt"
    if resume and last.is_file():
        saved = read_checkpoint_state(last)
        differences = settings_differences(saved["run_settings"].get("settings"), settings)
        if differences:
            raise RunFolderError(
                f"cannot resume from {last}: it was saved by a run with other settings "
                f"({describe_differences(differences)}); {START_FRESH}"
            )
        return FolderClaim(resume_from=last, saved_data=saved["run_settings"].get("data"))
    why = "resume=false" if last.is_file() else "a fresh run in a used folder"
    return FolderClaim(superseded=move_aside(out_dir, why))


def check_resumed_data(claim: FolderClaim, data: Mapping[str, str]) -> None:
    """Refuse a resume whose checkpoint was trained on other rows (``Split.fingerprint``)."""
    if claim.resume_from is None or claim.saved_data is None:
        return
    changed = sorted(
        name
        for name in set(claim.saved_data) | set(data)
        if claim.saved_data.get(name) != data.get(name)
    )
    if changed:
        raise RunFolderError(
            f"cannot resume from {claim.resume_from}: the data changed since it was saved "
            f"(splits {', '.join(changed)} hold other rows); {START_FRESH}"
        )


def _completed_record(out_dir: Path) -> RunRecord | None:
    try:
        record = RunRecord.read(out_dir / "results.json")
    except (OSError, ValueError, TypeError):
        return None
    return record if record.status == "completed" else None


def save_hydra_files(out_dir: Path, job_config: Any) -> None:
    """Hydra's ``.hydra/`` (config, hydra, overrides), written once the folder is claimed, with
    secrets redacted as in ``results.json`` (``gelora.record.redact_secrets``).

    ``conf/train.yaml`` sets ``hydra.output_subdir: null``, because Hydra would write them before
    the app runs: over the files of a completed run that the app then declines to repeat, and
    with any secret passed as an override in clear. ``job_config`` is the config the app was
    given (unresolved, without ``hydra``), as Hydra saves it.
    """
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from gelora.atomic import atomic_file
    from gelora.sweep_jobs import split_overrides

    if not HydraConfig.initialized():
        return
    hydra_cfg = portable_hydra(OmegaConf.to_container(HydraConfig.get(), resolve=False))
    overrides = [redact_override(o) for o in hydra_cfg["overrides"]["task"]]
    hydra_cfg["overrides"]["task"] = overrides
    dirname = split_overrides(str(hydra_cfg["job"]["override_dirname"]))
    hydra_cfg["job"]["override_dirname"] = ",".join(redact_override(o) for o in dirname)
    folder = out_dir / ".hydra"
    folder.mkdir(exist_ok=True)
    files = {
        "config.yaml": redact_secrets(OmegaConf.to_container(job_config, resolve=False)),
        "hydra.yaml": {"hydra": hydra_cfg},
        "overrides.yaml": overrides,
    }
    for name, node in files.items():
        with atomic_file(folder / name) as tmp:
            OmegaConf.save(OmegaConf.create(node), tmp)


def portable_hydra(hydra_cfg: dict[str, Any]) -> dict[str, Any]:
    """Hydra's own record of a job (``hydra.yaml``'s ``hydra`` node, ``multirun.yaml``'s) with no
    folder of the machine that ran it: ``runtime.output_dir`` is ``.`` (the run folder),
    ``runtime.cwd`` and the config sources' file paths are ``None``. Changed in place and
    returned."""
    runtime = hydra_cfg.get("runtime") or {}
    if str(runtime.get("output_dir", "")).startswith("/"):
        runtime["output_dir"] = "."
    if str(runtime.get("cwd", "")).startswith("/"):
        runtime["cwd"] = None
    for source in runtime.get("config_sources") or []:
        if isinstance(source, dict) and str(source.get("path", "")).startswith("/"):
            source["path"] = None
    return hydra_cfg


def redact_override(override: str) -> str:
    """A ``key=value`` command-line override with a secret value replaced (``redact_secrets``)."""
    key, equals, value = override.partition("=")
    if not equals:
        return override
    if is_secret_key(key.lstrip("+~")):
        return f"{key}={REDACTED}"
    return f"{key}={redact_secrets(value)}"
